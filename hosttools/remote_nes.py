"""``RemoteNes``: an NES reached through its HTTP API, with the methods of the in-process ``Nes``.

The host flows and ``nymi-band nes …`` call :class:`simulator.nes.Nes`. :class:`RemoteNes` offers
the same methods, signatures and return types (the frozen views, rebuilt with their ``from_json``)
so that ``--nes http://HOST:PORT/NAME`` reaches a server started with ``create_site_app`` (``NAME``
is the server's mount: ``nes`` for the single server, ``enrollment`` / ``registration`` in the
IT/OT layout), and ``http://HOST:PORT`` one started with ``create_app``.

Who makes each call:

- The Nymi Band Application's calls (enrollment check, enrollment, registration, NBA sign-in,
  effective policy, recording a FIDO2 key, the user's own User Properties and keys) are made as
  the signed-in user: ``nes.directory.authenticate(account, password)`` signs in (``POST
  /api/v1/login``) and the user's bearer token is used for every later call about that account.
- Every other call is an administrator's. The administrator's credentials are, in this order,
  the ``user`` / ``password`` given to :meth:`RemoteNes.open`, the URL's user info
  (``http://CORP%5Cnes-admin:secret@host:8080/nes``), or ``NYMI_NES_USER`` /
  ``NYMI_NES_PASSWORD`` in the ``env`` given to :meth:`RemoteNes.open` (``nymi-band`` passes its
  environment). Without them an administrator call raises :class:`NesCredentialsRequired`
  naming those variables.
- ``actor`` arguments are accepted and ignored: the server records the authenticated account.

Errors: the API's JSON error bodies become the in-process classes with the server's message:
403 refusal → ``NesRefusal`` (its ``RefusalCode`` and context), 404 → ``NotFound``, 409 →
``NesConflict``, 422 → ``NesInvalidInput``. 401 → :class:`NesCredentialsRefused`; a server that
cannot be reached → ``BandUnreachableError`` (``TRANSPORT_FAILED``) naming the URL; an answer no
NES gives → :class:`NesServerError`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import quote, urlsplit

from hosttools.nes_http import (
    PASSWORD_ENV,
    USER_ENV,
    NesCallUnavailable,
    NesCredentialsRefused,
    NesCredentialsRequired,
    NesHttp,
    NesServerError,
)
from nymi_device.protocol.nes import BandFacts
from nymi_device.protocol.nes.directory import DirectoryUser
from nymi_device.protocol.nes.enums import EamState, PolicyKind, PolicyStatus
from nymi_device.protocol.nes.errors import NesInvalidInput, NesRefusal, NotFound, RefusalCode
from nymi_device.protocol.nes.policy import PolicyOverrides, PolicySettings, effective
from nymi_device.protocol.nes.views import (
    AssignmentView,
    AuditEventView,
    BandView,
    EamEntryView,
    EnrollmentCheck,
    EnrollmentResult,
    Fido2KeyView,
    PolicyView,
    UserView,
    settings_from_json,
    tap_verdict,
)
from nymi_device.protocol.text import b64url

__all__ = [
    "PASSWORD_ENV",
    "USER_ENV",
    "NesCallUnavailable",
    "NesCredentialsRefused",
    "NesCredentialsRequired",
    "NesServerError",
    "RemoteDirectory",
    "RemoteNes",
]
T = TypeVar("T")


def _listed(decode: Callable[[Mapping[str, Any]], T]) -> Callable[[Any], list[T]]:
    return lambda rows: [decode(row) for row in rows]


def _q(text: str) -> str:
    """A path segment: accounts carry a backslash, policy names spaces."""
    return quote(text, safe="")


class RemoteDirectory:
    """The directory as the Nymi Band Application reaches it: sign-in through the API."""

    def __init__(self, http: NesHttp) -> None:
        self._http = http

    def authenticate(self, account: str, password: str) -> DirectoryUser | None:
        """Sign ``account`` in; their directory entry, or None if the NES refused."""
        return self._http.sign_in(account, password)

    def add_user(self, account: str, password: str, *, first_name: str = "",
                 last_name: str = "", groups: Any = (),
                 replace_existing: bool = False) -> DirectoryUser:
        raise NesCallUnavailable(
            f"the NES HTTP API cannot add directory users: add {account} to the directory of the "
            f"site behind {self._http.url} (nymi-band --sim-dir DIR nes user add …)")


class RemoteNes:
    """An NES behind its HTTP API (see the module docstring)."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 timeout: float = 30.0) -> None:
        self._http = NesHttp(url, user=user, password=password, timeout=timeout)
        self.url = self._http.url
        self.directory = RemoteDirectory(self._http)
        self._name: str | None = None

    @classmethod
    def open(cls, url: str, *, user: str | None = None, password: str | None = None,
             env: Mapping[str, str] | None = None, timeout: float = 30.0) -> RemoteNes:
        """Connect to the NES at ``url`` and check that it answers. Administrator credentials
        neither given nor in the URL are taken from ``NYMI_NES_USER`` / ``NYMI_NES_PASSWORD``
        in ``env``."""
        parts = urlsplit(url)
        if env is not None:
            if user is None and not parts.username:
                user = env.get(USER_ENV) or None
            if password is None and parts.password is None:
                password = env.get(PASSWORD_ENV)
        nes = cls(url, user=user, password=password, timeout=timeout)
        try:
            nes._name = nes._http.health()
        except BaseException:
            nes.close()
            raise
        return nes

    @property
    def name(self) -> str:
        """The server's name (``GET /api/v1/health``)."""
        if self._name is None:
            self._name = self._http.health()
        return self._name

    def close(self) -> None:
        """Sign every session out and close the connection."""
        self._http.close()

    def __enter__(self) -> RemoteNes:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RemoteNes(url={self.url!r})"

    # -- plumbing ------------------------------------------------------------------------------
    def _admin(self, decode: Callable[[Any], T], method: str, path: str, *, body: Any = None,
               params: Mapping[str, Any] | None = None) -> T:
        """An administrator call, its answer decoded."""
        return self._http.decoded(decode, self._http.admin(method, path, body=body, params=params))

    def _nba(self, decode: Callable[[Any], T], account: str, method: str, path: str = "", *,
             body: Any = None) -> T:
        """A Nymi Band Application call made as the signed-in ``account``, decoded."""
        data = self._http.me(self._http.signed_in(account), method, path, body=body)
        return self._http.decoded(decode, data)

    # -- users ---------------------------------------------------------------------------------
    def ensure_user(self, account: str, *, actor: str = "system") -> UserView:
        if self._http.session(account) is not None:
            return self._nba(UserView.from_json, account, "PUT")
        return self._admin(UserView.from_json, "POST", "/users", body={"account": account})

    def user(self, account: str) -> UserView:
        if self._http.session(account) is None:
            return self._admin(UserView.from_json, "GET", f"/users/{_q(account)}")
        found = self._nba(lambda d: d["nes_user"], account, "GET")
        if found is None:
            raise NotFound(f"no user {account} in this NES", "user", account)
        return self._http.decoded(UserView.from_json, found)

    def users(self, query: str = "", *, limit: int = 100, offset: int = 0) -> list[UserView]:
        return self._admin(_listed(UserView.from_json), "GET", "/users",
                           params={"q": query, "limit": limit, "offset": offset})

    def resolve_account(self, name: str) -> str:
        session = self._http.session(name)
        return session[0] if session is not None else self.user(name).account

    def set_individual_policy(self, account: str, policy: str | None, *,
                              actor: str = "system") -> UserView:
        return self._admin(UserView.from_json, "PUT", f"/users/{_q(account)}/individual-policy",
                           body={"policy": policy})

    def effective_policy(self, account: str) -> PolicySettings:
        if self._http.session(account) is not None:
            return self._nba(lambda d: settings_from_json(d["settings"]), account, "GET",
                             "/policy")
        user = self.user(account)
        group = next(p for p in self.policies() if p.kind is PolicyKind.GROUP and p.is_active)
        individual = (None if user.individual_policy is None
                      else self.policy(user.individual_policy).values)
        return effective(group.settings(), individual)

    def policy_status(self, account: str) -> PolicyStatus:
        if self._http.session(account) is None:
            return self.user(account).policy_status
        return self._nba(lambda d: PolicyStatus(d["policy_status"]), account, "GET", "/policy")

    def policy_statuses(self, policy: str | None = None) -> list[tuple[str, PolicyStatus]]:
        return self._admin(
            lambda rows: [(r["account"], PolicyStatus(r["policy_status"])) for r in rows],
            "GET", "/policy-status", params={"policy": policy})

    # -- bands ---------------------------------------------------------------------------------
    def band(self, serial: str) -> BandView:
        return self._admin(BandView.from_json, "GET", f"/bands/{_q(serial)}")

    def bands(self, serial_query: str = "", *, limit: int = 100) -> list[BandView]:
        found = self._admin(_listed(BandView.from_json), "GET", "/bands",
                            params={"q": serial_query})
        return found[:limit]

    def check_tap(self, serial: str, *, account: str | None = None,
                  task: str = "tap task") -> AssignmentView:
        if account is not None and self._http.session(account) is not None:
            user = self.user(account)
            row = next((b for b in user.bands if b.serial == serial), None)
            if row is None:
                raise NesRefusal(f"The Nymi Band {serial} is not a Nymi Band of {user.account}: "
                                 f"it cannot be used for a {task}.", RefusalCode.NOT_OWNER,
                                 serial=serial)
            return tap_verdict(serial, user.account, row, user.account, task)
        band = self.band(serial)
        return tap_verdict(band.serial, band.owner, band.assignment,
                           None if account is None else self.resolve_account(account), task)

    def _band_action(self, serial: str, action: str, body: Any = None) -> UserView:
        return self._admin(UserView.from_json, "POST", f"/bands/{_q(serial)}/{action}", body=body)

    def update_band(self, serial: str, *, is_active: bool | None = None,
                    is_primary: bool | None = None, notes: str | None = None,
                    actor: str = "system") -> UserView:
        changes = {"is_active": is_active, "is_primary": is_primary, "notes": notes}
        return self._admin(UserView.from_json, "PATCH", f"/bands/{_q(serial)}",
                           body={k: v for k, v in changes.items() if v is not None})

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
        return self._admin(EnrollmentResult.from_json, "POST", f"/bands/{_q(serial)}/reassign",
                           body={"to": to_account, "nba_version": nba_version, "label": label})

    # -- enrollment and registration (the Nymi Band Application's calls) ----------------------
    def check_enrollment(self, account: str, serial: str) -> EnrollmentCheck:
        return self._nba(EnrollmentCheck.from_json, account, "POST", "/enrollment-checks",
                         body={"serial": serial})

    def enroll(self, account: str, band: BandFacts, *, nba_version: str | None = None,
               label: str | None = None, expected_band_version: int | None = None,
               actor: str | None = None) -> EnrollmentResult:
        body = {**dataclasses.asdict(band), "nba_version": nba_version, "label": label,
                "expected_band_version": expected_band_version}
        return self._nba(EnrollmentResult.from_json, account, "POST", "/enrollments", body=body)

    def register(self, account: str, band: BandFacts, *, enrolled_at_nes: str | None = None,
                 nba_version: str | None = None, label: str | None = None,
                 expected_band_version: int | None = None,
                 actor: str | None = None) -> EnrollmentResult:
        body = {**dataclasses.asdict(band), "enrolled_at_nes": enrolled_at_nes,
                "nba_version": nba_version, "label": label,
                "expected_band_version": expected_band_version}
        return self._nba(EnrollmentResult.from_json, account, "POST", "/registrations",
                         body=body)

    def nba_sign_in(self, account: str, serial: str, *, nba_version: str | None = None,
                    actor: str | None = None) -> PolicyStatus:
        return self._nba(lambda d: PolicyStatus(d["policy_status"]), account, "POST",
                         "/sign-ins", body={"serial": serial, "nba_version": nba_version})

    # -- policies ------------------------------------------------------------------------------
    def policies(self) -> list[PolicyView]:
        return self._admin(_listed(PolicyView.from_json), "GET", "/policies")

    def policy(self, name: str) -> PolicyView:
        return self._admin(PolicyView.from_json, "GET", f"/policies/{_q(name)}")

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
        return self._admin(PolicyView.from_json, "POST", "/policies", body={
            "name": name, "kind": kind.value, "copy_of": copy_of, "description": description,
            "settings": settings})

    def update_policy(self, name: str, changes: Mapping[str, Any], *,
                      actor: str = "system") -> PolicyView:
        return self._admin(PolicyView.from_json, "PATCH", f"/policies/{_q(name)}",
                           body={"settings": dict(changes)})

    def activate_group_policy(self, name: str, *, actor: str = "system") -> PolicyView:
        return self._admin(PolicyView.from_json, "POST", f"/policies/{_q(name)}/activate")

    def delete_policy(self, name: str, *, actor: str = "system") -> None:
        self._http.admin("DELETE", f"/policies/{_q(name)}")

    # -- FIDO2 security keys -------------------------------------------------------------------
    def record_fido2_key(self, account: str, serial: str, rp_id: str, credential_id: bytes,
                         public_key_cose: bytes, *, actor: str | None = None) -> Fido2KeyView:
        return self._nba(Fido2KeyView.from_json, account, "POST", "/fido2-keys", body={
            "serial": serial, "rp_id": rp_id, "credential_id": b64url(credential_id),
            "public_key_cose": b64url(public_key_cose)})

    def fido2_keys(self, account: str | None = None, serial: str | None = None
                   ) -> list[Fido2KeyView]:
        decode = _listed(Fido2KeyView.from_json)
        if account is not None and self._http.session(account) is not None:
            keys = self._nba(decode, account, "GET", "/fido2-keys")
        elif account is not None:
            keys = self._admin(decode, "GET", f"/users/{_q(account)}/fido2-keys")
        else:
            keys = [k for user in self._all_accounts() for k in self.fido2_keys(user)]
            keys.sort(key=lambda k: (k.created, k.id))
        return [k for k in keys if serial is None or k.serial == serial]

    def _all_accounts(self) -> list[str]:
        accounts: list[str] = []
        while True:
            page = self.users(limit=1000, offset=len(accounts))
            accounts += [u.account for u in page]
            if len(page) < 1000:
                return accounts

    def delete_fido2_key(self, credential_id: bytes, *, actor: str = "system") -> None:
        self._http.admin("DELETE", f"/fido2-keys/{b64url(credential_id)}")

    # -- EAM registry --------------------------------------------------------------------------
    def eam_entries(self, account: str, *, include_deleted: bool = True) -> list[EamEntryView]:
        entries = self._admin(_listed(EamEntryView.from_json), "GET",
                              f"/users/{_q(account)}/eam-entries")
        return [e for e in entries if include_deleted or e.state is not EamState.DELETED]

    def eam_blacklist(self, entry_id: int, *, actor: str = "system") -> list[EamEntryView]:
        return self._admin(_listed(EamEntryView.from_json), "POST",
                           f"/eam-entries/{int(entry_id)}/blacklist")

    def eam_delete(self, entry_id: int, *, actor: str = "system") -> EamEntryView:
        return self._admin(EamEntryView.from_json, "DELETE", f"/eam-entries/{int(entry_id)}")

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, *, table: str | None = None, account: str | None = None,
              key: str | None = None, limit: int = 1000) -> list[AuditEventView]:
        return self._admin(_listed(AuditEventView.from_json), "GET", "/audit",
                           params={"table": table, "account": account, "key": key,
                                   "limit": limit})
