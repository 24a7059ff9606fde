"""The enterprise server's vocabulary, shared by the server and its clients.

What a host flow says to a Nymi Enterprise Server and hears back, whether the server is embedded
in the process or reached over its HTTP API: the facts about a band an enrollment records
(:class:`BandFacts`), the errors a server raises (one root, :class:`NesError`, each mixing in the
builtin a caller would catch), and :class:`NesClient`, the calls a flow makes. The embedded
server (``simulator.nes.Nes``) and the HTTP client (``hosttools.remote_nes.RemoteNes``) both
implement :class:`NesClient`; mypy checks them against it.

Pure data and typing: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nymi_device.errors import BandError, InvalidInputError

# -- errors -------------------------------------------------------------------------------------

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


# -- what an enrollment records about the band -------------------------------------------------

@dataclass(frozen=True)
class BandFacts:
    """What the Nymi Band Application reads from the band it enrolls."""

    serial: str
    device_id: str
    seos_enabled: bool = False
    secure_nfc: bool = False
    nfc_id: str | None = None
    """The band's stable NFC identifier: what the EAM registry binds."""
    liveness_configurable: bool = True
    """False for firmware older than CWP 1.1."""


# -- the calls a flow makes -----------------------------------------------------------------------

class DirectoryAccount(Protocol):
    @property
    def account(self) -> str: ...


class NesDirectory(Protocol):
    def authenticate(self, account: str, password: str) -> DirectoryAccount | None: ...


class EnrollmentAnswer(Protocol):
    """May this user enroll this band? (given before anything is written)"""

    @property
    def allowed(self) -> bool: ...

    @property
    def action(self) -> enum.Enum | None:
        """What the enrollment would do (its value: ``enroll``, ``self-service-free-band``,
        ``re-enroll-own-band``, ``self-service-band-of-another-user``); ``None`` if refused."""
        ...

    @property
    def code(self) -> str | None: ...

    @property
    def message(self) -> str | None: ...

    @property
    def band_version(self) -> int: ...


class EffectivePolicy(Protocol):
    """The settings of the user's effective policy an enrollment writes to the band."""

    @property
    def band_label(self) -> bool: ...

    @property
    def corporate_credentials(self) -> bool: ...

    @property
    def liveness_detection(self) -> bool: ...

    @property
    def haptic_feedback(self) -> bool: ...


class BandRecord(Protocol):
    @property
    def serial(self) -> str: ...

    @property
    def owner(self) -> str | None: ...


class UserRecord(Protocol):
    @property
    def account(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


class EnrollmentOutcome(Protocol):
    @property
    def action(self) -> enum.Enum: ...

    @property
    def user(self) -> UserRecord: ...


class Fido2KeyRecord(Protocol):
    @property
    def rp_id(self) -> str: ...

    @property
    def credential_id(self) -> bytes: ...

    @property
    def public_key_cose(self) -> bytes: ...


class NesClient(Protocol):
    """The calls the host flows make to an enterprise server."""

    @property
    def name(self) -> str: ...

    @property
    def directory(self) -> NesDirectory: ...

    def ensure_user(self, account: str, *, actor: str = "system") -> UserRecord: ...

    def user(self, account: str) -> UserRecord: ...

    def resolve_account(self, name: str) -> str: ...

    def effective_policy(self, account: str) -> EffectivePolicy: ...

    def band(self, serial: str) -> BandRecord: ...

    def bands(self, serial_query: str = "", *, limit: int = 100) -> Sequence[BandRecord]: ...

    def check_enrollment(self, account: str, serial: str) -> EnrollmentAnswer: ...

    def enroll(self, account: str, band: BandFacts, *, nba_version: str | None = None,
               label: str | None = None, expected_band_version: int | None = None,
               actor: str | None = None) -> EnrollmentOutcome: ...

    def register(self, account: str, band: BandFacts, *, enrolled_at_nes: str | None = None,
                 nba_version: str | None = None, label: str | None = None,
                 expected_band_version: int | None = None,
                 actor: str | None = None) -> EnrollmentOutcome: ...

    def check_tap(self, serial: str, *, account: str | None = None,
                  task: str = "tap task") -> Any:
        """Refuse (:class:`NesRefusal`) a tap task on a band that is not ``account``'s active
        band: suspended, replaced, set aside for a temporary band, or left after self-service."""
        ...

    def nba_sign_in(self, account: str, serial: str, *, nba_version: str | None = None,
                    actor: str | None = None) -> enum.Enum:
        """The user signed in to the NBA wearing the authenticated band: the policy status."""
        ...

    def record_fido2_key(self, account: str, serial: str, rp_id: str, credential_id: bytes,
                         public_key_cose: bytes, *, actor: str | None = None) -> Any: ...

    def fido2_keys(self, account: str | None = None,
                   serial: str | None = None) -> Sequence[Fido2KeyRecord]: ...
