"""``RemoteNes``: an NES reached through its HTTP API, with the methods of the in-process ``Nes``.

The host flows and ``nymi-band nes …`` call :class:`simulator.nes.Nes`. :class:`RemoteNes` offers
the same methods, signatures and return types (the frozen views, rebuilt from the API's JSON), so
``--nes http://HOST:PORT/NAME`` reaches a server started with ``create_site_app`` (``NAME`` is the
server's mount: ``nes`` for the single server, ``enrollment`` / ``registration`` in the IT/OT
layout), and ``http://HOST:PORT`` one started with ``create_app``.

Who makes each call:

- The Nymi Band Application's calls (enrollment check, enrollment, registration, effective
  policy, FIDO2 keys, the user's own User Properties) are made as the signed-in user:
  ``nes.directory.authenticate(account, password)`` signs in (``POST /api/v1/login``) and keeps
  that user's bearer token for every later call about that account.
- Every other call is an administrator's. The administrator's credentials are, in this order,
  the ``user`` / ``password`` given to :meth:`RemoteNes.open`, the URL's user info
  (``http://CORP%5Cnes-admin:secret@host:8080/nes``), or ``NYMI_NES_USER`` /
  ``NYMI_NES_PASSWORD`` from the ``env`` given to :meth:`RemoteNes.open` (``nymi-band`` passes
  its environment). Without them an administrator call fails with
  :class:`NesCredentialsRequired`, naming those variables.
- ``actor`` arguments are accepted and ignored: the server records the authenticated account.

Errors: the API's JSON error bodies become the in-process classes with the server's message:
403 refusal → ``NesRefusal`` (its ``RefusalCode`` and context), 404 → ``NotFound``, 409 →
``NesConflict``, 422 → ``NesInvalidInput``. 401 → :class:`NesCredentialsRefused`; a server that
cannot be reached → ``BandUnreachableError`` (``TRANSPORT_FAILED``) naming the URL; an answer no
NES gives → :class:`NesServerError`.
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import quote, unquote, urlsplit, urlunsplit

import httpx

from nymi_device.errors import BandError, BandUnreachableError, InvalidInputError, UnreachableReason
from simulator.nes.directory import ADMIN_GROUP, DirectoryUser
from simulator.nes.enrollment import BandFacts
from simulator.nes.errors import NesConflict, NesInvalidInput, NesRefusal, NotFound, RefusalCode
from simulator.nes.models import EamState, PolicyKind
from simulator.nes.policy import PolicyOverrides, PolicySettings, effective
from simulator.nes.views import (
    AuditEventView,
    BandView,
    EamEntryView,
    EnrollmentCheck,
    EnrollmentResult,
    Fido2KeyView,
    PolicyStatus,
    PolicyView,
    UserView,
    b64url,
    settings_from_json,
)

if TYPE_CHECKING:
    from simulator.nes.service import Nes

T = TypeVar("T")
USER_ENV = "NYMI_NES_USER"
PASSWORD_ENV = "NYMI_NES_PASSWORD"  # noqa: S105 - the name of a variable, not a password
API_PREFIX = "/api/v1"


class NesCredentialsRefused(BandError, PermissionError):
    """The NES refused the account and password (HTTP 401), or a sign-in has expired."""


class NesCredentialsRequired(BandError, PermissionError):
    """The call needs a signed-in user or an NES administrator that this client does not have."""


class NesServerError(BandError, RuntimeError):
    """The server gave an answer no NES gives (an unexpected status or body)."""


class NesCallUnavailable(BandError, NotImplementedError):
    """The NES HTTP API has no call for this in-process operation."""


def _listed(decode: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], list[T]]:
    return lambda rows: [decode(row) for row in rows]


def _q(text: str) -> str:
    """A path segment: accounts carry a backslash, policy names spaces."""
    return quote(text, safe="")


def _error_body(response: httpx.Response) -> tuple[str, dict[str, Any]]:
    try:
        data = response.json()
    except ValueError:
        data = None
    if isinstance(data, dict) and isinstance(data.get("error"), str):
        detail = data.get("detail")
        return data["error"], detail if isinstance(detail, dict) else {}
    return " ".join(response.text.split())[:200] or response.reason_phrase, {}


def _refusal_code(code: object) -> RefusalCode:
    try:
        return RefusalCode(str(code))
    except ValueError:
        return RefusalCode.POLICY


class RemoteDirectory:
    """The directory as the Nymi Band Application reaches it: sign-in through the API."""

    def __init__(self, nes: RemoteNes) -> None:
        self._nes = nes

    def authenticate(self, account: str, password: str) -> DirectoryUser | None:
        """Sign ``account`` in; the user's directory entry, or None if the NES refused."""
        return self._nes._sign_in(account, password)

    def add_user(self, account: str, password: str, *, first_name: str = "",
                 last_name: str = "", groups: Any = (),
                 replace_existing: bool = False) -> DirectoryUser:
        raise NesCallUnavailable(
            f"the NES HTTP API cannot add directory users: add {account} to the directory of the "
            f"site behind {self._nes.url} (nymi-band --sim-dir DIR nes user add …)")


class RemoteNes:
    """An NES behind its HTTP API (see the module docstring)."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"not an http(s) URL of an NES: {url!r}")
        path = parts.path.rstrip("/")
        path = path.removesuffix(API_PREFIX)
        self.url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))
        url_user = unquote(parts.username) if parts.username else None
        url_password = unquote(parts.password) if parts.password is not None else None
        self._admin_account = user if user is not None else url_user
        self._admin_password = password if password is not None else url_password
        self._admin_token: str | None = None
        self._sessions: dict[str, tuple[str, str]] = {}
        """Signed-in users: case-folded account -> (account, bearer token)."""
        self._name: str | None = None
        self._client = httpx.Client(base_url=self.url + API_PREFIX, timeout=timeout)
        self.directory = RemoteDirectory(self)

    @classmethod
    def open(cls, url: str, *, user: str | None = None, password: str | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 30.0) -> RemoteNes:
        """Connect to the NES at ``url`` and check that it answers. Administrator credentials
        not given nor in the URL are taken from ``NYMI_NES_USER`` / ``NYMI_NES_PASSWORD`` in
        ``env``."""
        parts = urlsplit(url)
        if env is not None:
            if user is None and not parts.username:
                user = env.get(USER_ENV) or None
            if password is None and parts.password is None:
                password = env.get(PASSWORD_ENV)
        nes = cls(url, user=user, password=password, timeout=timeout)
        try:
            nes._name = nes._health()
        except BaseException:
            nes.close()
            raise
        return nes

    @property
    def name(self) -> str:
        """The server's name (``GET /api/v1/health``)."""
        if self._name is None:
            self._name = self._health()
        return self._name

    def as_nes(self) -> Nes:
        """This client where the host tools expect an in-process :class:`Nes`."""
        return cast("Nes", self)

    def close(self) -> None:
        """Sign every session out and close the connection."""
        tokens = [token for _, token in self._sessions.values()]
        tokens += [self._admin_token] if self._admin_token else []
        self._sessions.clear()
        self._admin_token = None
        try:
            for token in tokens:
                with contextlib.suppress(NesCredentialsRefused, NesServerError):
                    self._request("POST", "/logout", token=token)
        except BandUnreachableError:
            pass  # the tokens expire on their own
        finally:
            self._client.close()

    def __enter__(self) -> RemoteNes:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteNes(url={self.url!r})"

    # -- plumbing ------------------------------------------------------------------------------
    def _request(self, method: str, path: str, *, token: str | None = None, body: Any = None,
                 params: Mapping[str, Any] | None = None) -> Any:
        headers = {"Authorization": f"Bearer {token}"} if token else None
        query = {k: v for k, v in (params or {}).items() if v is not None}
        try:
            response = self._client.request(method, path, headers=headers, json=body,
                                            params=query or None)
        except httpx.TransportError as exc:
            reason = " ".join(str(exc).split()) or type(exc).__name__
            raise BandUnreachableError(f"cannot reach the NES at {self.url}: {reason}",
                                       UnreachableReason.TRANSPORT_FAILED) from exc
        if not response.is_success:
            raise self._error(response, f"{method} {path}")
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise NesServerError(f"{self.url} answered {method} {path} with a body that is not "
                                 "JSON; is it an NES?") from None

    def _error(self, response: httpx.Response, call: str) -> BandError:
        status = response.status_code
        message, detail = _error_body(response)
        context = {k: v for k, v in detail.items() if k not in ("type", "code")}
        if status == 401:
            return NesCredentialsRefused(f"the NES at {self.url} refused the credentials: "
                                         f"{message}")
        if status == 403 and detail.get("type") == "NesRefusal":
            return NesRefusal(message, _refusal_code(detail.get("code")), **context)
        if status == 403:
            return NesCredentialsRequired(f"{message} (the NES at {self.url})")
        if status == 404 and "kind" in detail:
            return NotFound(message, str(detail["kind"]), str(detail.get("name", "")))
        if status == 404:
            return NotFound(f"{message}: {call} at {self.url}", "resource", call)
        if status == 409:
            return NesConflict(message, **context)
        if status == 422:
            return NesInvalidInput(message)
        return NesServerError(f"the NES at {self.url} answered {call} with HTTP {status}: "
                              f"{message}")

    def _decoded(self, decode: Callable[[Any], T], data: Any) -> T:
        try:
            return decode(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NesServerError(f"the NES at {self.url} answered with an unexpected body "
                                 f"({type(exc).__name__}: {exc})") from None

    def _health(self) -> str:
        try:
            data = self._request("GET", "/health")
        except NotFound:
            raise NotFound(self._no_nes_here(), "nes", self.url) from None
        name = data.get("nes") if isinstance(data, dict) else None
        if not isinstance(name, str):
            raise NesServerError(f"{self.url} does not answer GET {API_PREFIX}/health as an NES")
        return name

    def _no_nes_here(self) -> str:
        parts = urlsplit(self.url)
        root = urlunsplit((parts.scheme, parts.netloc, "/", "", ""))
        servers: Any = None
        with contextlib.suppress(BandError, httpx.HTTPError, ValueError):
            servers = self._client.get(root).json().get("servers")
        if isinstance(servers, dict) and servers:
            names = ", ".join(root + str(name) for name in servers)
            return f"no NES at {self.url}; this server has: {names}"
        return f"no NES at {self.url}"

    def _login(self, account: str, password: str) -> dict[str, Any] | None:
        try:
            data = self._request("POST", "/login",
                                 body={"username": account, "password": password})
        except (NesCredentialsRefused, NesInvalidInput):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise NesServerError(f"the NES at {self.url} answered the sign-in without a token")
        return data

    def _sign_in(self, account: str, password: str) -> DirectoryUser | None:
        data = self._login(account, password)
        if data is None:
            return None
        token = str(data["access_token"])
        entry = self._request("GET", "/me", token=token)

        def decode(d: Any) -> DirectoryUser:
            e = d["directory"]
            return DirectoryUser(domain=e["domain"], username=e["username"],
                                 first_name=e["first_name"], last_name=e["last_name"],
                                 groups=frozenset(e["groups"]))
        user = self._decoded(decode, entry)
        self._sessions[user.account.casefold()] = (user.account, token)
        return user

    def _session(self, account: str) -> tuple[str, str] | None:
        key = account.strip().casefold()
        if key in self._sessions:
            return self._sessions[key]
        if "\\" not in key:
            found = [s for k, s in self._sessions.items() if k.split("\\", 1)[1] == key]
            if len(found) == 1:
                return found[0]
        return None

    def _signed_in(self, account: str) -> tuple[str, str]:
        session = self._session(account)
        if session is None:
            raise NesCredentialsRequired(
                f"{account} is not signed in to the NES at {self.url}: it answers this call "
                "only to the signed-in user (sign in first)")
        return session

    def _me(self, session: tuple[str, str], method: str, path: str = "", *,
            body: Any = None) -> Any:
        account, token = session
        try:
            return self._request(method, "/me" + path, token=token, body=body)
        except NesCredentialsRefused:
            self._sessions.pop(account.casefold(), None)
            raise NesCredentialsRefused(f"the sign-in of {account} at {self.url} has expired; "
                                        "sign in again") from None

    def _admin_sign_in(self) -> str:
        account, password = self._admin_account, self._admin_password
        if not account or password is None:
            raise NesCredentialsRequired(
                f"this needs an NES administrator at {self.url}: set {USER_ENV} and "
                f"{PASSWORD_ENV} (or give DOMAIN%5Cuser:password@ in the URL)")
        data = self._login(account, password)
        if data is None:
            raise NesCredentialsRefused(f"the NES at {self.url} refused the administrator "
                                        f"credentials of {account}: unknown user or wrong "
                                        "password")
        if not data.get("is_admin"):
            raise NesCredentialsRequired(f'{data.get("account", account)} is not a member of '
                                         f'"{ADMIN_GROUP}" at {self.url}: give an '
                                         f"administrator's credentials in {USER_ENV} and "
                                         f"{PASSWORD_ENV}")
        self._admin_token = str(data["access_token"])
        return self._admin_token

    def _admin(self, method: str, path: str, *, body: Any = None,
               params: Mapping[str, Any] | None = None) -> Any:
        token = self._admin_token or self._admin_sign_in()
        try:
            return self._request(method, path, token=token, body=body, params=params)
        except NesCredentialsRefused:
            # The token went idle past the server's timeout: sign in again, once.
            self._admin_token = None
            return self._request(method, path, token=self._admin_sign_in(), body=body,
                                 params=params)

    # -- users ---------------------------------------------------------------------------------
    def ensure_user(self, account: str, *, actor: str = "system") -> UserView:
        session = self._session(account)
        data = (self._me(session, "PUT") if session is not None
                else self._admin("POST", "/users", body={"account": account}))
        return self._decoded(UserView.from_json, data)

    def user(self, account: str) -> UserView:
        session = self._session(account)
        if session is None:
            return self._decoded(UserView.from_json, self._admin("GET", f"/users/{_q(account)}"))
        data = self._me(session, "GET")
        if not isinstance(data, dict) or data.get("nes_user") is None:
            raise NotFound(f"no user {account} in this NES", "user", account)
        return self._decoded(UserView.from_json, data["nes_user"])

    def users(self, query: str = "", *, limit: int = 100, offset: int = 0) -> list[UserView]:
        data = self._admin("GET", "/users", params={"q": query, "limit": limit, "offset": offset})
        return self._decoded(_listed(UserView.from_json), data)

    def resolve_account(self, name: str) -> str:
        session = self._session(name)
        return session[0] if session is not None else self.user(name).account

    def set_individual_policy(self, account: str, policy: str | None, *,
                              actor: str = "system") -> UserView:
        data = self._admin("PUT", f"/users/{_q(account)}/individual-policy",
                           body={"policy": policy})
        return self._decoded(UserView.from_json, data)

    def effective_policy(self, account: str) -> PolicySettings:
        session = self._session(account)
        if session is not None:
            data = self._me(session, "GET", "/policy")
            return self._decoded(lambda d: settings_from_json(d["settings"]), data)
        user = self.user(account)
        group = next(p for p in self.policies() if p.kind is PolicyKind.GROUP and p.is_active)
        individual = (None if user.individual_policy is None
                      else self.policy(user.individual_policy).values)
        return effective(group.settings(), individual)

    def policy_status(self, account: str) -> PolicyStatus:
        session = self._session(account)
        if session is None:
            return self.user(account).policy_status
        data = self._me(session, "GET", "/policy")
        return self._decoded(lambda d: PolicyStatus(d["policy_status"]), data)

    def policy_statuses(self, policy: str | None = None) -> list[tuple[str, PolicyStatus]]:
        data = self._admin("GET", "/policy-status", params={"policy": policy})
        return self._decoded(
            lambda rows: [(r["account"], PolicyStatus(r["policy_status"])) for r in rows], data)

    # -- bands ---------------------------------------------------------------------------------
    def band(self, serial: str) -> BandView:
        return self._decoded(BandView.from_json, self._admin("GET", f"/bands/{_q(serial)}"))

    def bands(self, serial_query: str = "", *, limit: int = 100) -> list[BandView]:
        data = self._admin("GET", "/bands", params={"q": serial_query})
        return self._decoded(_listed(BandView.from_json), data)[:limit]

    def _band_action(self, serial: str, action: str, body: Any = None) -> UserView:
        data = self._admin("POST", f"/bands/{_q(serial)}/{action}", body=body)
        return self._decoded(UserView.from_json, data)

    def update_band(self, serial: str, *, is_active: bool | None = None,
                    is_primary: bool | None = None, notes: str | None = None,
                    actor: str = "system") -> UserView:
        changes = {"is_active": is_active, "is_primary": is_primary, "notes": notes}
        data = self._admin("PATCH", f"/bands/{_q(serial)}",
                           body={k: v for k, v in changes.items() if v is not None})
        return self._decoded(UserView.from_json, data)

    def suspend(self, serial: str, *, notes: str | None = None,
                actor: str = "system") -> UserView:
        return self._band_action(serial, "suspend", {"notes": notes})

    def disconnect(self, serial: str, *, actor: str = "system") -> UserView:
        return self._band_action(serial, "disconnect")

    def replace_lost_band(self, serial: str, *, notes: str = "Lost Band",
                          actor: str = "system") -> UserView:
        return self._band_action(serial, "replace", {"notes": notes})

    def issue_temporary_band(self, serial: str, *, notes: str = "Temporary band issued",
                             actor: str = "system") -> UserView:
        return self._band_action(serial, "temporary", {"notes": notes})

    def restore_original(self, serial: str, *, actor: str = "system") -> UserView:
        return self._band_action(serial, "restore")

    def reassign(self, serial: str, to_account: str, *, nba_version: str | None = None,
                 label: str | None = None, actor: str = "system") -> EnrollmentResult:
        data = self._admin("POST", f"/bands/{_q(serial)}/reassign",
                           body={"to": to_account, "nba_version": nba_version, "label": label})
        return self._decoded(EnrollmentResult.from_json, data)

    # -- enrollment and registration (the Nymi Band Application's calls) ----------------------
    def check_enrollment(self, account: str, serial: str) -> EnrollmentCheck:
        data = self._me(self._signed_in(account), "POST", "/enrollment-checks",
                        body={"serial": serial})
        return self._decoded(EnrollmentCheck.from_json, data)

    def enroll(self, account: str, band: BandFacts, *, nba_version: str | None = None,
               label: str | None = None, expected_band_version: int | None = None,
               actor: str | None = None) -> EnrollmentResult:
        body = {**dataclasses.asdict(band), "nba_version": nba_version, "label": label,
                "expected_band_version": expected_band_version}
        data = self._me(self._signed_in(account), "POST", "/enrollments", body=body)
        return self._decoded(EnrollmentResult.from_json, data)

    def register(self, account: str, band: BandFacts, *, enrolled_at_nes: str | None = None,
                 nba_version: str | None = None, label: str | None = None,
                 expected_band_version: int | None = None,
                 actor: str | None = None) -> EnrollmentResult:
        body = {**dataclasses.asdict(band), "enrolled_at_nes": enrolled_at_nes,
                "nba_version": nba_version, "label": label,
                "expected_band_version": expected_band_version}
        data = self._me(self._signed_in(account), "POST", "/registrations", body=body)
        return self._decoded(EnrollmentResult.from_json, data)

    def nba_sign_in(self, account: str, serial: str, *, nba_version: str | None = None,
                    actor: str | None = None) -> PolicyStatus:
        data = self._me(self._signed_in(account), "POST", "/sign-ins",
                        body={"serial": serial, "nba_version": nba_version})
        return self._decoded(lambda d: PolicyStatus(d["policy_status"]), data)

    # -- policies ------------------------------------------------------------------------------
    def policies(self) -> list[PolicyView]:
        return self._decoded(_listed(PolicyView.from_json), self._admin("GET", "/policies"))

    def policy(self, name: str) -> PolicyView:
        return self._decoded(PolicyView.from_json, self._admin("GET", f"/policies/{_q(name)}"))

    def create_policy(self, name: str, kind: PolicyKind | str = PolicyKind.INDIVIDUAL, *,
                      values: PolicyOverrides | Mapping[str, Any] | None = None,
                      copy_of: str | None = None, description: str = "",
                      actor: str = "system") -> PolicyView:
        try:
            kind = PolicyKind(kind)
        except ValueError:
            raise NesInvalidInput(f"a policy is 'group' or 'individual', not {kind!r}") from None
        settings = (values.set_values() if isinstance(values, PolicyOverrides)
                    else dict(values or {}))
        data = self._admin("POST", "/policies", body={
            "name": name, "kind": kind.value, "copy_of": copy_of, "description": description,
            "settings": settings})
        return self._decoded(PolicyView.from_json, data)

    def update_policy(self, name: str, changes: Mapping[str, Any], *,
                      actor: str = "system") -> PolicyView:
        data = self._admin("PATCH", f"/policies/{_q(name)}", body={"settings": dict(changes)})
        return self._decoded(PolicyView.from_json, data)

    def activate_group_policy(self, name: str, *, actor: str = "system") -> PolicyView:
        data = self._admin("POST", f"/policies/{_q(name)}/activate")
        return self._decoded(PolicyView.from_json, data)

    def delete_policy(self, name: str, *, actor: str = "system") -> None:
        self._admin("DELETE", f"/policies/{_q(name)}")

    # -- FIDO2 security keys -------------------------------------------------------------------
    def record_fido2_key(self, account: str, serial: str, rp_id: str, credential_id: bytes,
                         public_key_cose: bytes, *, actor: str | None = None) -> Fido2KeyView:
        data = self._me(self._signed_in(account), "POST", "/fido2-keys", body={
            "serial": serial, "rp_id": rp_id, "credential_id": b64url(credential_id),
            "public_key_cose": b64url(public_key_cose)})
        return self._decoded(Fido2KeyView.from_json, data)

    def fido2_keys(self, account: str | None = None, serial: str | None = None
                   ) -> list[Fido2KeyView]:
        session = None if account is None else self._session(account)
        if session is not None:
            keys = self._decoded(_listed(Fido2KeyView.from_json), self._me(session, "GET",
                                                                       "/fido2-keys"))
        elif account is not None:
            keys = self._decoded(_listed(Fido2KeyView.from_json),
                                 self._admin("GET", f"/users/{_q(account)}/fido2-keys"))
        else:
            keys = [k for user in self._all_users() for k in self.fido2_keys(user)]
            keys.sort(key=lambda k: (k.created, k.id))
        return [k for k in keys if serial is None or k.serial == serial]

    def _all_users(self) -> list[str]:
        accounts: list[str] = []
        while True:
            page = self.users(limit=1000, offset=len(accounts))
            accounts += [u.account for u in page]
            if len(page) < 1000:
                return accounts

    def delete_fido2_key(self, credential_id: bytes, *, actor: str = "system") -> None:
        self._admin("DELETE", f"/fido2-keys/{b64url(credential_id)}")

    # -- EAM registry --------------------------------------------------------------------------
    def eam_entries(self, account: str, *, include_deleted: bool = True) -> list[EamEntryView]:
        data = self._admin("GET", f"/users/{_q(account)}/eam-entries")
        entries = self._decoded(_listed(EamEntryView.from_json), data)
        return [e for e in entries if include_deleted or e.state is not EamState.DELETED]

    def eam_blacklist(self, entry_id: int, *, actor: str = "system") -> list[EamEntryView]:
        data = self._admin("POST", f"/eam-entries/{int(entry_id)}/blacklist")
        return self._decoded(_listed(EamEntryView.from_json), data)

    def eam_delete(self, entry_id: int, *, actor: str = "system") -> EamEntryView:
        data = self._admin("DELETE", f"/eam-entries/{int(entry_id)}")
        return self._decoded(EamEntryView.from_json, data)

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, *, table: str | None = None, account: str | None = None,
              key: str | None = None, limit: int = 1000) -> list[AuditEventView]:
        data = self._admin("GET", "/audit", params={"table": table, "account": account,
                                                     "key": key, "limit": limit})
        return self._decoded(_listed(AuditEventView.from_json), data)
