"""Who is calling the NES HTTP API.

Two ways to authenticate, both against the directory (:mod:`simulator.nes.directory`):

- HTTP Basic with ``DOMAIN\\username`` (or a unique bare username) and the password, on every
  call;
- a bearer token from ``POST /api/v1/login``, valid until it has been idle for the idle timeout
  (default 5 minutes, the documented NBA logout delay, DOMAIN 8.1) or ``POST /api/v1/logout``;
  an account holds at most a few live tokens (signing in once more ends the least recently
  used one).

Wrong passwords lock the account and throttle the client (:mod:`simulator.nes.api_guard`).

Roles: every directory user may make the Nymi Band Application's calls (``/api/v1/me/…``) for
themselves; members of "NES Administrators" may also make the administrator calls.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, HTTPException, Request
from fastapi.security import (
    HTTPAuthorizationCredentials,
    HTTPBasic,
    HTTPBasicCredentials,
    HTTPBearer,
)

from simulator.nes.api_guard import AuthGuard
from simulator.nes.directory import ADMIN_GROUP, Directory, DirectoryUser

CHALLENGE = {"WWW-Authenticate": 'Basic realm="NES", Bearer'}


@dataclass(frozen=True)
class Principal:
    """The authenticated caller."""

    user: DirectoryUser
    token: str | None = None

    @property
    def account(self) -> str:
        return self.user.account

    @property
    def is_admin(self) -> bool:
        return self.user.is_admin


class TokenStore:
    """Bearer tokens with a sliding idle timeout, at most ``per_account`` live ones for each
    account; thread-safe."""

    def __init__(self, idle_seconds: float, *, per_account: int = 8,
                 clock: Callable[[], float] | None = None) -> None:
        self.idle_seconds = idle_seconds
        self.per_account = max(1, per_account)
        self._clock = clock or time.monotonic
        self._tokens: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def issue(self, account: str) -> str:
        token = secrets.token_urlsafe(32)
        key = account.casefold()
        with self._lock:
            self._purge()
            mine = sorted((exp, t) for t, (a, exp) in self._tokens.items() if a.casefold() == key)
            for _, oldest in mine[:max(0, len(mine) - self.per_account + 1)]:
                del self._tokens[oldest]
            self._tokens[token] = (account, self._clock() + self.idle_seconds)
        return token

    def account(self, token: str) -> str | None:
        with self._lock:
            entry = self._tokens.get(token)
            if entry is None or entry[1] < self._clock():
                self._tokens.pop(token, None)
                return None
            self._tokens[token] = (entry[0], self._clock() + self.idle_seconds)
            return entry[0]

    def revoke(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def _purge(self) -> None:
        now = self._clock()
        for token in [t for t, (_, exp) in self._tokens.items() if exp < now]:
            del self._tokens[token]


basic_scheme = HTTPBasic(auto_error=False, realm="NES",
                         description="Directory account (CORP\\username) and password")
bearer_scheme = HTTPBearer(auto_error=False, description="Token from POST /api/v1/login")


def unauthenticated(message: str = "authentication required") -> HTTPException:
    return HTTPException(status_code=401, detail=message, headers=CHALLENGE)


def principal(
    request: Request,
    basic: Annotated[HTTPBasicCredentials | None, Depends(basic_scheme)],
    bearer: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer_scheme)],
) -> Principal:
    """The caller, authenticated by HTTP Basic or by a bearer token; 401 otherwise."""
    directory: Directory = request.app.state.nes.directory
    tokens: TokenStore = request.app.state.tokens
    if basic is not None:
        guard: AuthGuard = request.app.state.guard
        user = guard.authenticate(request, directory, basic.username, basic.password)
        if user is None:
            raise unauthenticated("unknown user or wrong password")
        return Principal(user)
    if bearer is not None:
        account = tokens.account(bearer.credentials)
        found = None if account is None else directory.find(account)
        if found is None:
            raise unauthenticated("the token is unknown or has expired; sign in again")
        return Principal(found, token=bearer.credentials)
    raise unauthenticated()


def administrator(caller: Annotated[Principal, Depends(principal)]) -> Principal:
    """The caller, who must be a member of "NES Administrators"; 403 otherwise."""
    if not caller.is_admin:
        raise HTTPException(status_code=403,
                            detail=f'only members of "{ADMIN_GROUP}" may make this call')
    return caller


Caller = Annotated[Principal, Depends(principal)]
Admin = Annotated[Principal, Depends(administrator)]
