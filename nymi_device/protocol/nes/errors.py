"""Errors an enterprise server raises, shared by the server and its clients.

One root, :class:`NesError`; each mixes in the builtin a caller would catch.
"""

from __future__ import annotations

import enum
from typing import Any

from nymi_device.errors import BandError, InvalidInputError


class RefusalCode(enum.StrEnum):
    """Why the NES refused an operation; the message shown to the person is on the error."""

    NOT_FOUND = "assigned-band-not-found"
    """The NES still links a band that the request does not account for."""
    OTHER_USER = "band-of-another-user"
    """The band belongs to another user and the policy does not allow taking it over."""
    SEOS = "seos-band-of-another-user"
    """A SEOS-enabled band of another user (refused even with "any active band")."""
    NOT_ACTIVE = "own-band-not-active"
    """The user's own band was suspended, replaced or set aside by an administrator."""
    EAM_ENTRY = "eam-entry-not-deleted"
    """A Secure NFC band still has an RFID entry in the EAM registry."""
    NOT_OWNER = "not-the-owner"
    """A user acted on a band that is not assigned to them."""
    POLICY = "not-allowed-by-policy"
    """Anything else the effective policy does not allow."""

    @classmethod
    def _missing_(cls, value: object) -> RefusalCode:
        # A code from a newer server must not crash an older client.
        return cls.POLICY


class NesError(BandError):
    """Root of the errors an enterprise server raises (embedded or over HTTP)."""

    def detail(self) -> dict[str, Any]:
        """Structured detail for the API's JSON error body."""
        return {"type": type(self).__name__}


class NesRefusal(NesError, PermissionError):
    """The NES refused the operation; ``str(error)`` is the exact user-facing message."""

    def __init__(self, message: str, code: RefusalCode, **context: Any) -> None:
        super().__init__(message)
        self.message = message
        self.code = code
        self.context = context

    def detail(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "code": self.code.value, **self.context}


class NotFound(NesError, LookupError):
    """No user, band, policy, key or registry entry of that name is known to this NES."""

    def __init__(self, message: str, kind: str, name: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.name = name

    def __str__(self) -> str:
        # LookupError's KeyError-style repr quoting does not apply: keep the plain sentence.
        return str(self.args[0])

    def detail(self) -> dict[str, Any]:
        return {"type": type(self).__name__, "kind": self.kind, "name": self.name}


class NesConflict(NesError, RuntimeError):
    """The operation conflicts with the present state (or with a change made at the same time)."""

    def __init__(self, message: str, **context: Any) -> None:
        super().__init__(message)
        self.context = context

    def detail(self) -> dict[str, Any]:
        return {"type": type(self).__name__, **self.context}


class NesInvalidInput(NesError, InvalidInputError):
    """A value given to the NES is malformed (an account name, a serial, a policy value)."""

    def detail(self) -> dict[str, Any]:
        return {"type": type(self).__name__}


class NesStorageError(NesError, OSError):
    """A site's files are missing or damaged (``site.json``, a database it records)."""

    def __str__(self) -> str:
        return str(self.args[0])
