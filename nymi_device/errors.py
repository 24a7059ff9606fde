"""One error hierarchy for everything the stack raises.

Every error derives from :class:`BandError`; subclasses also derive from the builtin a caller
would naturally catch (``ValueError``, ``LookupError``, ``ConnectionError``, ...), so code that
knows nothing about this package still handles them sensibly. Codes that travel on a wire are
enums with a fallback for unknown values, so an unexpected code from a band never crashes the host.
"""

from __future__ import annotations

import enum


class BandError(Exception):
    """Root of every error raised by nymi-band-stack."""


class InvalidInputError(BandError, ValueError):
    """Input from a caller or a peer was malformed (bad bytes, bad argument, bad frame)."""


class FixtureError(InvalidInputError):
    """A firmware fixture file is not valid; the message names the file, field and expectation."""


class UnknownBandError(BandError, LookupError):
    """No band with that serial (or moniker) is known."""


class InvalidTargetError(InvalidInputError):
    """A target moniker (``sim:SERIAL``, ``ble:ADDRESS``, ...) could not be parsed."""


class PhysicalActionError(BandError, RuntimeError):
    """A physical action is impossible in the band's present state (a button on a dead band)."""


class FeatureUnavailableError(BandError, NotImplementedError):
    """This band, reached this way, cannot do what was asked (the message says why and what
    can): e.g. the enrollment channel of a real band reached over standard BLE."""


class StepNotConfirmedError(BandError, TimeoutError):
    """A physical step was asked for and the band never confirmed it happened.

    :ivar step: the step's name, as the flow reports it.
    """

    def __init__(self, step: str, message: str) -> None:
        super().__init__(message)
        self.step = step


class StorageError(BandError, OSError):
    """The band's durable storage could not be read or written."""


class UnreachableReason(enum.Enum):
    """Why a band could not be reached; support staff act differently on each."""

    NOT_FOUND = "not-found"
    NO_ADAPTER = "no-adapter"
    POWERED_OFF = "powered-off"
    OUT_OF_RANGE = "out-of-range"
    NOT_ON_READER = "not-on-reader"
    TRANSPORT_FAILED = "transport-failed"
    UNSUPPORTED = "unsupported"
    UNKNOWN = "unknown"


class BandUnreachableError(BandError, ConnectionError):
    """The band exists (or may exist) but cannot be reached now."""

    def __init__(self, message: str, reason: UnreachableReason = UnreachableReason.UNKNOWN) -> None:
        super().__init__(message)
        self.reason = reason


class StatusCode(enum.IntEnum):
    """Status codes of the band management protocol (docs/protocol.md)."""

    OK = 0x00
    INVALID_MESSAGE = 0x01
    UNSUPPORTED_COMMAND = 0x02
    INVALID_STATE = 0x03
    NOT_AUTHENTICATED = 0x04
    LOCKED_OUT = 0x05
    PRECONDITION_FAILED = 0x06
    INVALID_PARAMETER = 0x07
    BUSY = 0x08
    STORAGE_FAILURE = 0x09
    SESSION_REQUIRED = 0x0A
    REPLAYED = 0x0B
    OUT_OF_ORDER = 0x0C
    INVALID_FRAME = 0x0D
    MESSAGE_TOO_LARGE = 0x0E
    UNSUPPORTED_VERSION = 0x0F
    INTEGRITY_FAILURE = 0x10
    HANDSHAKE_FAILED = 0x11
    UNTRUSTED_BAND = 0x12
    SETUP_CODE_MISMATCH = 0x13
    INTERNAL_ERROR = 0x14
    UNKNOWN = 0xFF

    @classmethod
    def _missing_(cls, value: object) -> StatusCode:
        # An unknown code from a newer band must not crash an older host.
        return cls.UNKNOWN


class BandCommandError(BandError, RuntimeError):
    """The band refused a command with a protocol status code."""

    def __init__(self, status: StatusCode | int, message: str = "") -> None:
        self.status = StatusCode(status)
        self.raw_status = int(status)
        text = message or self.status.name.replace("_", " ").lower()
        super().__init__(f"{text} (status 0x{self.raw_status:02x})")


class SecureSessionError(BandCommandError):
    """The management session could not be set up, or broke (docs/protocol.md §7, §10).

    Its status says why: ``UNTRUSTED_BAND``, ``HANDSHAKE_FAILED``, ``REPLAYED``, ``OUT_OF_ORDER``,
    ``INTEGRITY_FAILURE``, ``SESSION_REQUIRED`` or a framing error. A new handshake is needed.
    """
