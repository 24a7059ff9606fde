"""CTAP status codes and the exception the authenticator core raises internally.

Every handler reports a refusal by raising :class:`CtapError`; the dispatcher turns it into the
one-byte status that starts the response (CTAP 2.1 §8.2 "Status codes"). The exception never
leaves :meth:`Authenticator.process_cbor <simulator.band.ctap.authenticator.Authenticator>`.
"""

from __future__ import annotations

import enum

from nymi_device.errors import BandError


class CtapError(BandError, RuntimeError):
    """A CTAP command failed with a status code (CTAP 2.1 §8.2)."""

    @enum.unique
    class ERR(enum.IntEnum):
        """CTAP1/CTAP2 status codes by their CTAP 2.1 names (without the CTAP1_/CTAP2_ prefix)."""

        SUCCESS = 0x00
        INVALID_COMMAND = 0x01
        INVALID_PARAMETER = 0x02
        INVALID_LENGTH = 0x03
        INVALID_SEQ = 0x04
        TIMEOUT = 0x05
        CHANNEL_BUSY = 0x06
        LOCK_REQUIRED = 0x0A
        INVALID_CHANNEL = 0x0B
        CBOR_UNEXPECTED_TYPE = 0x11
        INVALID_CBOR = 0x12
        MISSING_PARAMETER = 0x14
        LIMIT_EXCEEDED = 0x15
        FP_DATABASE_FULL = 0x17
        LARGE_BLOB_STORAGE_FULL = 0x18
        CREDENTIAL_EXCLUDED = 0x19
        PROCESSING = 0x21
        INVALID_CREDENTIAL = 0x22
        USER_ACTION_PENDING = 0x23
        OPERATION_PENDING = 0x24
        NO_OPERATIONS = 0x25
        UNSUPPORTED_ALGORITHM = 0x26
        OPERATION_DENIED = 0x27
        KEY_STORE_FULL = 0x28
        UNSUPPORTED_OPTION = 0x2B
        INVALID_OPTION = 0x2C
        KEEPALIVE_CANCEL = 0x2D
        NO_CREDENTIALS = 0x2E
        USER_ACTION_TIMEOUT = 0x2F
        NOT_ALLOWED = 0x30
        PIN_INVALID = 0x31
        PIN_BLOCKED = 0x32
        PIN_AUTH_INVALID = 0x33
        PIN_AUTH_BLOCKED = 0x34
        PIN_NOT_SET = 0x35
        PUAT_REQUIRED = 0x36
        PIN_POLICY_VIOLATION = 0x37
        REQUEST_TOO_LARGE = 0x39
        ACTION_TIMEOUT = 0x3A
        UP_REQUIRED = 0x3B
        UV_BLOCKED = 0x3C
        INTEGRITY_FAILURE = 0x3D
        INVALID_SUBCOMMAND = 0x3E
        UV_INVALID = 0x3F
        UNAUTHORIZED_PERMISSION = 0x40
        OTHER = 0x7F

        @classmethod
        def _missing_(cls, value: object) -> CtapError.ERR | None:
            # An unknown status byte (a newer spec, a vendor range) must not crash a reader.
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 0xFF:
                return None
            member = int.__new__(cls, value)
            member._name_ = f"UNKNOWN_0x{value:02X}"
            member._value_ = value
            return member

    def __init__(self, code: int, message: str = "") -> None:
        self.code = CtapError.ERR(code)
        text = message or self.code.name
        super().__init__(f"CTAP status 0x{int(self.code):02X} {text}")


ERR = CtapError.ERR
