"""The HTTP session under :class:`hosttools.remote_nes.RemoteNes`: sign-ins, calls, errors.

:class:`NesHttp` holds one connection to an NES's API (``<url>/api/v1``), the bearer tokens of the
users signed in through it and of the administrator, and turns every answer that is not a success
into the error the in-process ``Nes`` would raise (see :meth:`NesHttp.error`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from typing import Any, TypeVar
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx

from nymi_device.errors import BandError, BandUnreachableError, InvalidInputError, UnreachableReason
from nymi_device.protocol.nes.directory import ADMIN_GROUP, DirectoryUser
from nymi_device.protocol.nes.errors import (
    NesConflict,
    NesInvalidInput,
    NesRefusal,
    NotFound,
    RefusalCode,
)

T = TypeVar("T")
USER_ENV = "NYMI_NES_USER"
PASSWORD_ENV = "NYMI_NES_PASSWORD"  # noqa: S105 - the name of a variable, not a password
API_PREFIX = "/api/v1"
Session = tuple[str, str]
"""A signed-in user: (account, bearer token)."""


class NesCredentialsRefused(BandError, PermissionError):
    """The NES refused the account and password (HTTP 401), or a sign-in has expired."""


class NesSignInLocked(NesCredentialsRefused):
    """The account or this client is locked out after wrong passwords (HTTP 429): not even
    the right password is accepted until the wait the message names is over."""


class NesCredentialsRequired(BandError, PermissionError):
    """The call needs a signed-in user or an NES administrator that this client does not have."""


class NesServerError(BandError, RuntimeError):
    """The server gave an answer no NES gives (an unexpected status or body)."""


class NesCallUnavailable(BandError, NotImplementedError):
    """The NES HTTP API has no call for this in-process operation."""


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


class NesHttp:
    """One connection to the NES at ``url``; ``user`` / ``password`` are the administrator's
    (else the URL's user info)."""

    def __init__(self, url: str, *, user: str | None = None, password: str | None = None,
                 timeout: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise InvalidInputError(f"not an http(s) URL of an NES: {url!r}")
        path = parts.path.rstrip("/").removesuffix(API_PREFIX)
        self.url = urlunsplit((parts.scheme, parts.netloc.rpartition("@")[2], path, "", ""))
        """The server's URL, without credentials."""
        url_password = unquote(parts.password) if parts.password is not None else None
        self._admin_account = user if user is not None else (
            unquote(parts.username) if parts.username else None)
        self._admin_password = password if password is not None else url_password
        self._admin_token: str | None = None
        self._sessions: dict[str, Session] = {}
        self._client = httpx.Client(base_url=self.url + API_PREFIX, timeout=timeout)

    def close(self) -> None:
        """Sign every session out (best effort) and close the connection."""
        tokens = [token for _, token in self._sessions.values()]
        tokens += [self._admin_token] if self._admin_token else []
        self._sessions.clear()
        self._admin_token = None
        try:
            for token in tokens:
                with contextlib.suppress(NesCredentialsRefused, NesServerError):
                    self.request("POST", "/logout", token=token)
        except BandUnreachableError:
            pass  # the tokens expire on their own
        finally:
            self._client.close()

    # -- calls ---------------------------------------------------------------------------------
    def request(self, method: str, path: str, *, token: str | None = None, body: Any = None,
                params: Mapping[str, Any] | None = None) -> Any:
        """One call; the decoded JSON answer (None for an empty one)."""
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
            raise self.error(response, f"{method} {path}")
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise NesServerError(f"{self.url} answered {method} {path} with a body that is not "
                                 "JSON; is it an NES?") from None

    def error(self, response: httpx.Response, call: str) -> BandError:
        """The error of an answer that is not a success, with the server's message."""
        status = response.status_code
        message, detail = _error_body(response)
        context = {k: v for k, v in detail.items() if k not in ("type", "code")}
        if status == 401:
            return NesCredentialsRefused(f"the NES at {self.url} refused the credentials: "
                                         f"{message}")
        if status == 429:
            return NesSignInLocked(f"the NES at {self.url} refused the sign-in for now: "
                                   f"{message}")
        if status == 413:
            return NesInvalidInput(f"{message} (the NES at {self.url})")
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

    def decoded(self, decode: Callable[[Any], T], data: Any) -> T:
        """``decode(data)``; a body of the wrong shape is the server's error."""
        try:
            return decode(data)
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise NesServerError(f"the NES at {self.url} answered with an unexpected body "
                                 f"({type(exc).__name__}: {exc})") from None

    def health(self) -> str:
        """The server's name; NotFound naming the servers there if ``url`` is not an NES."""
        try:
            data = self.request("GET", "/health")
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
        with contextlib.suppress(httpx.HTTPError, ValueError, AttributeError):
            servers = self._client.get(root).json().get("servers")
        if isinstance(servers, dict) and servers:
            return (f"no NES at {self.url}; this server has: "
                    f"{', '.join(root + str(name) for name in servers)}")
        return f"no NES at {self.url}"

    # -- users signed in through this connection -----------------------------------------------
    def _login(self, account: str, password: str) -> dict[str, Any] | None:
        try:
            data = self.request("POST", "/login", body={"username": account, "password": password})
        except NesSignInLocked:
            raise
        except (NesCredentialsRefused, NesInvalidInput):
            return None
        if not isinstance(data, dict) or not isinstance(data.get("access_token"), str):
            raise NesServerError(f"the NES at {self.url} answered the sign-in without a token")
        return data

    def sign_in(self, account: str, password: str) -> DirectoryUser | None:
        """Sign a user in; their directory entry, or None if the NES refused the password."""
        data = self._login(account, password)
        if data is None:
            return None
        token = str(data["access_token"])

        def entry(d: Any) -> DirectoryUser:
            e = d["directory"]
            return DirectoryUser(domain=e["domain"], username=e["username"],
                                 first_name=e["first_name"], last_name=e["last_name"],
                                 groups=frozenset(e["groups"]))
        user = self.decoded(entry, self.request("GET", "/me", token=token))
        self._sessions[user.account.casefold()] = (user.account, token)
        return user

    def session(self, account: str) -> Session | None:
        """The session of ``account`` (``CORP\\username`` or a unique bare username)."""
        key = account.strip().casefold()
        if key in self._sessions:
            return self._sessions[key]
        found = [s for k, s in self._sessions.items() if k.split("\\", 1)[-1] == key]
        return found[0] if len(found) == 1 and "\\" not in key else None

    def signed_in(self, account: str) -> Session:
        session = self.session(account)
        if session is None:
            raise NesCredentialsRequired(
                f"{account} is not signed in to the NES at {self.url}: it answers this call "
                "only to the signed-in user (sign in first)")
        return session

    def me(self, session: Session, method: str, path: str = "", *, body: Any = None) -> Any:
        """A Nymi Band Application call (``/me…``) as the signed-in user."""
        account, token = session
        try:
            return self.request(method, "/me" + path, token=token, body=body)
        except NesCredentialsRefused:
            self._sessions.pop(account.casefold(), None)
            raise NesCredentialsRefused(f"the sign-in of {account} at {self.url} has expired; "
                                        "sign in again") from None

    # -- the administrator ---------------------------------------------------------------------
    def _admin_sign_in(self) -> str:
        account, password = self._admin_account, self._admin_password
        if not account or password is None:
            raise NesCredentialsRequired(
                f"this needs an NES administrator at {self.url}: set {USER_ENV} and "
                f"{PASSWORD_ENV} (or give CORP%5Cuser:password@ in the URL)")
        data = self._login(account, password)
        if data is None:
            raise NesCredentialsRefused(f"the NES at {self.url} refused the administrator "
                                        f"credentials of {account}: unknown user or wrong "
                                        "password")
        if not data.get("is_admin"):
            raise NesCredentialsRequired(
                f'{data.get("account", account)} is not a member of "{ADMIN_GROUP}" at '
                f"{self.url}: give an administrator's credentials in {USER_ENV} and "
                f"{PASSWORD_ENV}")
        self._admin_token = str(data["access_token"])
        return self._admin_token

    def admin(self, method: str, path: str, *, body: Any = None,
              params: Mapping[str, Any] | None = None) -> Any:
        """An administrator call, signing the administrator in when needed."""
        token = self._admin_token or self._admin_sign_in()
        try:
            return self.request(method, path, token=token, body=body, params=params)
        except NesCredentialsRefused:
            # The token went idle past the server's timeout: sign in again, once.
            self._admin_token = None
            return self.request(method, path, token=self._admin_sign_in(), body=body,
                                params=params)
