"""Who is using the NES Administrator Console: sign-in, sessions, roles, CSRF and lockout.

- Sign-in with the directory account; the console is for three roles, each a directory group:
  administrators ("NES Administrators", every page and action), help desk ("NES Help Desk",
  every page, no change) and read-only ("NES Read-Only": users, bands and policies). Other
  directory users are refused.
- The session is a random token in a cookie (HttpOnly, SameSite=Strict, Secure over HTTPS,
  scoped to the server's prefix, so each server of a site has its own sessions); it ends after
  the idle timeout (5 minutes by default, as the vendor's console) or at sign-out.
- Every form carries the session's CSRF token (the sign-in form a pre-session one bound to a
  cookie); a POST without the right token, or from another origin, changes nothing.
- After ``max_failures`` wrong passwords within ``lockout_seconds`` an account is locked for
  ``lockout_seconds``, whatever the password; the message does not tell whether the account
  exists.
"""

from __future__ import annotations

import enum
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from simulator.nes.directory import ADMIN_GROUP, DirectoryUser

HELP_DESK_GROUP = "NES Help Desk"
READ_ONLY_GROUP = "NES Read-Only"
SESSION_COOKIE = "nes_console"
LOGIN_COOKIE = "nes_console_login"


class Role(enum.IntEnum):
    """Console roles, in increasing power."""

    READ_ONLY = 1
    HELP_DESK = 2
    ADMINISTRATOR = 3

    @property
    def label(self) -> str:
        return {Role.READ_ONLY: "read-only", Role.HELP_DESK: "help desk",
                Role.ADMINISTRATOR: "administrator"}[self]


def role_of(user: DirectoryUser) -> Role | None:
    if ADMIN_GROUP in user.groups:
        return Role.ADMINISTRATOR
    if HELP_DESK_GROUP in user.groups:
        return Role.HELP_DESK
    if READ_ONLY_GROUP in user.groups:
        return Role.READ_ONLY
    return None


@dataclass
class ConsoleSession:
    token: str
    account: str
    role: Role
    csrf: str
    expires: float

    def csrf_ok(self, presented: str | None) -> bool:
        return presented is not None and hmac.compare_digest(presented.encode(),
                                                             self.csrf.encode())


@dataclass
class _Failures:
    times: list[float] = field(default_factory=list)
    locked_until: float = 0.0


class SessionStore:
    """Console sessions with a sliding idle timeout, and the sign-in lockout; thread-safe."""

    def __init__(self, *, idle_seconds: float = 300.0, max_failures: int = 5,
                 lockout_seconds: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.idle_seconds = idle_seconds
        self.max_failures = max_failures
        self.lockout_seconds = lockout_seconds
        self.clock = clock
        self._sessions: dict[str, ConsoleSession] = {}
        self._failures: dict[str, _Failures] = {}
        self._lock = threading.Lock()

    def open(self, account: str, role: Role) -> ConsoleSession:
        with self._lock:
            now = self.clock()
            for token in [t for t, s in self._sessions.items() if s.expires < now]:
                del self._sessions[token]
            session = ConsoleSession(secrets.token_urlsafe(32), account, role,
                                     secrets.token_urlsafe(32), now + self.idle_seconds)
            self._sessions[session.token] = session
            self._failures.pop(account.casefold(), None)
            return session

    def get(self, token: str | None) -> ConsoleSession | None:
        if not token:
            return None
        with self._lock:
            session = self._sessions.get(token)
            now = self.clock()
            if session is None or session.expires < now:
                self._sessions.pop(token, None)
                return None
            session.expires = now + self.idle_seconds
            return session

    def close(self, token: str) -> None:
        with self._lock:
            self._sessions.pop(token, None)

    def locked(self, account: str) -> bool:
        with self._lock:
            entry = self._failures.get(account.strip().casefold())
            return entry is not None and entry.locked_until > self.clock()

    def failed(self, account: str) -> None:
        with self._lock:
            now = self.clock()
            entry = self._failures.setdefault(account.strip().casefold(), _Failures())
            entry.times = [t for t in entry.times if t > now - self.lockout_seconds] + [now]
            if len(entry.times) >= self.max_failures:
                entry.locked_until = now + self.lockout_seconds
                entry.times = []
