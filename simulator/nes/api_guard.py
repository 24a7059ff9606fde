"""What a caller who has not proved who they are can make the NES HTTP API spend.

- Request bodies are bounded before they are read (:class:`BodyLimit`): a declared length over
  the limit is refused at once with 413, and a body sent without a length is cut off with 413
  as soon as it passes the limit, so memory never holds more than the limit and one chunk.
- Wrong passwords lock the account (:class:`AuthGuard`): after a run of failures the account
  is refused, even with the right password, for a while that doubles with each further lock;
  one client guessing across accounts is refused for a while as well. Both answer 429 with a
  ``Retry-After`` header, without computing a password hash.
- A credential the directory verified is remembered for a while (keyed by a keyed hash of the
  name and password, and only while the directory still holds the same password hash), so a
  client that sends HTTP Basic on every call costs one password hash, not one per call.
- At most a few password hashes are computed at once, so guessing clients queue behind each
  other instead of taking every core from the clients that already signed in.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import HTTPException, Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from nymi_device.protocol.nes.errors import NesInvalidInput
from simulator.nes.directory import Directory, DirectoryUser

Clock = Callable[[], float]


@dataclass(frozen=True)
class ApiLimits:
    """The bounds the HTTP API enforces; every field can be changed per server."""

    max_body_bytes: int = 64 * 1024
    """The largest request body accepted (the largest legitimate one is a few KiB)."""
    account_failures: int = 5
    """Wrong passwords in a row that lock an account."""
    account_lock_s: float = 60.0
    """How long the first lock lasts; each further lock lasts twice as long as the one before."""
    account_lock_max_s: float = 3600.0
    """The longest lock; an account's record is forgotten after this long without a failure."""
    client_failures: int = 20
    """Failed sign-ins from one client address (any accounts) that get the client refused."""
    client_window_s: float = 300.0
    """The window in which :attr:`client_failures` are counted."""
    client_lock_s: float = 300.0
    """How long a client that reached :attr:`client_failures` is refused."""
    concurrent_hashes: int = 2
    """Password hashes computed at the same time (one per core of a small server)."""
    credential_cache_s: float = 300.0
    """How long a verified name and password are accepted without hashing the password again."""
    tokens_per_user: int = 8
    """Live bearer tokens per account; signing in once more ends the least recently used."""
    tracked: int = 10_000
    """Accounts, clients and remembered credentials kept at most (the oldest are dropped)."""


class BodyTooLarge(HTTPException):
    """A request body passed :attr:`ApiLimits.max_body_bytes` while it was being read (an
    HTTP error, so the framework's body reading passes it on unchanged)."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, too_large_message(limit), headers={"Connection": "close"})
        self.limit = limit


def too_large_message(limit: int) -> str:
    return f"request body too large: at most {limit} bytes are accepted"


def too_large_body(limit: int) -> dict[str, Any]:
    return {"error": too_large_message(limit), "detail": {"type": "BodyTooLarge", "limit": limit}}


class BodyLimit:
    """ASGI middleware refusing bodies over ``max_bytes`` before they are read."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", ())).get(b"content-length")
        if declared is not None and (not declared.strip().isdigit()
                                     or int(declared) > self.max_bytes):
            await self._refuse(send)
            return
        received = 0

        async def bounded() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise BodyTooLarge(self.max_bytes)
            return message

        await self.app(scope, bounded, send)

    async def _refuse(self, send: Send) -> None:
        body = json.dumps(too_large_body(self.max_bytes)).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body})


@dataclass
class _Record:
    failures: int = 0
    window_start: float = 0.0
    locks: int = 0
    locked_until: float = 0.0
    last: float = 0.0


class _Records:
    """Failure records by key, at most ``limit`` of them (least recently touched dropped)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._items: OrderedDict[str, _Record] = OrderedDict()

    def get(self, key: str) -> _Record | None:
        return self._items.get(key)

    def touch(self, key: str) -> _Record:
        record = self._items.get(key)
        if record is None:
            record = self._items[key] = _Record()
            while len(self._items) > self.limit:
                self._items.popitem(last=False)
        self._items.move_to_end(key)
        return record

    def drop(self, key: str) -> None:
        self._items.pop(key, None)


def too_many(message: str, seconds: float) -> HTTPException:
    return HTTPException(status_code=429, detail=message,
                         headers={"Retry-After": str(max(1, math.ceil(seconds)))})


class AuthGuard:
    """Lockout, throttling, the verified-credential cache and the password-hash slots."""

    def __init__(self, limits: ApiLimits | None = None, clock: Clock | None = None) -> None:
        self.limits = limits or ApiLimits()
        self.clock = clock or time.monotonic
        self._accounts = _Records(self.limits.tracked)
        self._clients = _Records(self.limits.tracked)
        self._verified: OrderedDict[bytes, tuple[str, str, float]] = OrderedDict()
        self._secret = secrets.token_bytes(32)
        self._lock = threading.Lock()
        self._hash_slots = threading.BoundedSemaphore(max(1, self.limits.concurrent_hashes))

    # -- the one entry point ---------------------------------------------------------------
    def authenticate(self, request: Request, directory: Directory, username: str,
                     password: str) -> DirectoryUser | None:
        """The directory user if ``password`` is theirs, None if not; 429 while the account or
        the client is locked (checked before any hashing)."""
        client = request.client.host if request.client is not None else "unknown"
        account = self._account_key(directory, username)
        self._refuse_if_locked(account, client)
        key = self._credential_key(username, password)
        user = self._remembered(key, directory)
        if user is None:
            with self._hash_slots:
                self._refuse_if_locked(account, client)
                user = directory.authenticate(username, password)
        with self._lock:
            if user is None:
                self._failed(account, client)
                return None
            self._accounts.drop(account)
            self._verified[key] = (user.account, user.password_hash,
                                   self.clock() + self.limits.credential_cache_s)
            self._verified.move_to_end(key)
            while len(self._verified) > self.limits.tracked:
                self._verified.popitem(last=False)
        return user

    # -- pieces ----------------------------------------------------------------------------
    @staticmethod
    def _account_key(directory: Directory, username: str) -> str:
        """One key per account, whether it was named ``DOMAIN\\user`` or by a bare name."""
        try:
            user = directory.find(username)
        except NesInvalidInput:
            user = None
        return (user.account if user is not None else username.strip()).casefold()

    def _credential_key(self, username: str, password: str) -> bytes:
        text = f"{username.strip().casefold()}\x00{password}".encode("utf-8", "surrogatepass")
        return hmac.new(self._secret, text, hashlib.sha256).digest()

    def _remembered(self, key: bytes, directory: Directory) -> DirectoryUser | None:
        with self._lock:
            entry = self._verified.get(key)
            if entry is None:
                return None
            if entry[2] < self.clock():
                del self._verified[key]
                return None
        account, password_hash, _ = entry
        user = directory.find(account)
        if user is None or not hmac.compare_digest(user.password_hash, password_hash):
            with self._lock:
                self._verified.pop(key, None)
            return None
        return user

    def _refuse_if_locked(self, account: str, client: str) -> None:
        now = self.clock()
        with self._lock:
            by_client = self._clients.get(client)
            by_account = self._accounts.get(account)
        if by_client is not None and by_client.locked_until > now:
            raise too_many("too many failed sign-ins from this address; try again in "
                           f"{math.ceil(by_client.locked_until - now)} s",
                           by_client.locked_until - now)
        if by_account is not None and by_account.locked_until > now:
            raise too_many("too many failed sign-ins for this account; try again in "
                           f"{math.ceil(by_account.locked_until - now)} s",
                           by_account.locked_until - now)

    def _failed(self, account: str, client: str) -> None:
        """Count a wrong password (the caller holds the lock)."""
        limits, now = self.limits, self.clock()
        record = self._accounts.touch(account)
        if now - record.last > limits.account_lock_max_s:
            record.failures = record.locks = 0
        record.last = now
        record.failures += 1
        if record.failures >= limits.account_failures:
            record.locks += 1
            record.failures = 0
            record.locked_until = now + min(limits.account_lock_max_s,
                                            limits.account_lock_s * 2 ** min(record.locks - 1, 30))
        by_client = self._clients.touch(client)
        if now - by_client.window_start > limits.client_window_s:
            by_client.window_start, by_client.failures = now, 0
        by_client.failures += 1
        if by_client.failures >= limits.client_failures:
            by_client.failures = 0
            by_client.locked_until = now + limits.client_lock_s
