"""A small built-in directory of users, passwords and groups, standing in for Active Directory.

Users sign in to the Nymi Band Application with their directory account; administrators are the
members of "NES Administrators" (DOMAIN 8.1). Passwords are kept as salted scrypt hashes
(``scrypt$N$r$p$salt$hash``; PBKDF2-SHA256 ``pbkdf2_sha256$iterations$salt$hash`` is also
accepted). With a ``path`` the directory lives in a JSON file (mode 0600, replaced atomically)
and is re-read when another process changed it; without one it lives in memory. In the IT/OT
layout both servers share one directory, as both would share one Active Directory.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import threading
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path

from nymi_device.protocol.nes.directory import ADMIN_GROUP as ADMIN_GROUP
from nymi_device.protocol.nes.directory import DirectoryUser as DirectoryUser
from nymi_device.protocol.nes.errors import NesConflict, NesInvalidInput, NotFound
from simulator.nes.store import split_account

DEFAULT_DOMAIN = "CORP"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def hash_password(password: str, *, n: int = 2**14, r: int = 8, p: int = 1) -> str:
    """A salted scrypt hash of ``password`` in the directory's text format."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=32,
                            maxmem=128 * n * r * p + 1024 * 1024)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, encoded: str) -> bool:
    """Whether ``password`` matches a hash made by :func:`hash_password` (or PBKDF2-SHA256)."""
    try:
        scheme, *parts = encoded.split("$")
        if scheme == "scrypt":
            n, r, p = (int(x) for x in parts[:3])
            salt, want = base64.b64decode(parts[3]), base64.b64decode(parts[4])
            got = hashlib.scrypt(password.encode(), salt=salt, n=n, r=r, p=p, dklen=len(want),
                                 maxmem=128 * n * r * p + 1024 * 1024)
        elif scheme == "pbkdf2_sha256":
            iterations = int(parts[0])
            salt, want = base64.b64decode(parts[1]), base64.b64decode(parts[2])
            got = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations, len(want))
        else:
            return False
    except (ValueError, IndexError):
        return False
    return hmac.compare_digest(got, want)


class Directory:
    """Users, groups and password hashes; thread-safe."""

    def __init__(self, path: Path | None = None, *, default_domain: str = DEFAULT_DOMAIN,
                 scrypt_n: int = 2**14) -> None:
        self.path = path
        self.default_domain = default_domain.upper()
        self.scrypt_n = scrypt_n
        self._users: dict[str, DirectoryUser] = {}
        self._lock = threading.RLock()
        self._mtime: int | None = None
        self._dummy_hash: str | None = None
        self._reload()

    # -- persistence -----------------------------------------------------------------------
    def _reload(self) -> None:
        if self.path is None or not self.path.is_file():
            return
        mtime = self.path.stat().st_mtime_ns
        if mtime == self._mtime:
            return
        data = json.loads(self.path.read_text())
        self.default_domain = str(data.get("default_domain", self.default_domain))
        users = {}
        for raw in data.get("users", []):
            user = DirectoryUser(domain=raw["domain"], username=raw["username"],
                                 first_name=raw.get("first_name", ""),
                                 last_name=raw.get("last_name", ""),
                                 groups=frozenset(raw.get("groups", [])),
                                 password_hash=raw.get("password_hash", ""))
            users[user.account.casefold()] = user
        self._users = users
        self._mtime = mtime

    def _save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        data = {"default_domain": self.default_domain, "users": [
            {**u.to_json(), "password_hash": u.password_hash} for u in self._users.values()]}
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.path)
        self._mtime = self.path.stat().st_mtime_ns

    # -- queries ---------------------------------------------------------------------------
    def users(self) -> list[DirectoryUser]:
        with self._lock:
            self._reload()
            return sorted(self._users.values(), key=lambda u: u.account.casefold())

    def find(self, account: str) -> DirectoryUser | None:
        """The user ``DOMAIN\\username``; a bare username resolves when it is unique."""
        with self._lock:
            self._reload()
            text = account.strip()
            if "\\" in text:
                return self._users.get(text.casefold())
            matches = [u for u in self._users.values() if u.username.casefold() == text.casefold()]
            if len(matches) > 1:
                raise NesInvalidInput(f"username {text!r} exists in several domains; "
                                      "name the account as CORP\\username")
            return matches[0] if matches else None

    def get(self, account: str) -> DirectoryUser:
        user = self.find(account)
        if user is None:
            raise NotFound(f"no user {account} in the directory", "directory-user", account)
        return user

    def authenticate(self, account: str, password: str) -> DirectoryUser | None:
        """The user if ``password`` is theirs, else None (same work either way)."""
        try:
            user = self.find(account)
        except NesInvalidInput:
            user = None
        if user is None and self._dummy_hash is None:
            self._dummy_hash = hash_password(secrets.token_hex(8), n=self.scrypt_n)
        encoded = user.password_hash if user is not None else self._dummy_hash
        ok = verify_password(password, encoded or "")
        return user if ok and user is not None else None

    # -- changes ---------------------------------------------------------------------------
    def add_user(self, account: str, password: str, *, first_name: str = "",
                 last_name: str = "", groups: Iterable[str] = (),
                 replace_existing: bool = False) -> DirectoryUser:
        domain, username = split_account(account, self.default_domain)
        if not password:
            raise NesInvalidInput("a directory user needs a password")
        user = DirectoryUser(domain=domain, username=username, first_name=first_name,
                             last_name=last_name, groups=frozenset(groups),
                             password_hash=hash_password(password, n=self.scrypt_n))
        with self._lock:
            self._reload()
            if user.account.casefold() in self._users and not replace_existing:
                raise NesConflict(f"the directory already has a user {user.account}",
                                  account=user.account)
            self._users[user.account.casefold()] = user
            self._save()
        return user

    def set_password(self, account: str, password: str) -> None:
        self._update(account, password_hash=hash_password(password, n=self.scrypt_n))

    def add_to_group(self, account: str, group: str) -> DirectoryUser:
        return self._update(account, add_group=group)

    def remove_from_group(self, account: str, group: str) -> DirectoryUser:
        return self._update(account, remove_group=group)

    def _update(self, account: str, *, password_hash: str | None = None,
                add_group: str | None = None, remove_group: str | None = None) -> DirectoryUser:
        with self._lock:
            user = self.get(account)
            groups = set(user.groups)
            if add_group:
                groups.add(add_group)
            if remove_group:
                groups.discard(remove_group)
            user = replace(user, groups=frozenset(groups),
                           password_hash=password_hash or user.password_hash)
            self._users[user.account.casefold()] = user
            self._save()
            return user
