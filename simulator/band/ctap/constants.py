"""Constants shared by the authenticator modules: flags, permissions, algorithms, storage keys."""

from __future__ import annotations

import enum

from nymi_device.protocol.keepalive import KeepaliveStatus as KeepaliveStatus


def _unknown_member(cls: type[enum.IntEnum], value: object) -> enum.IntEnum | None:
    """An unknown-value fallback for wire enums: a pseudo-member named ``UNKNOWN_0x..``."""
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    member = int.__new__(cls, value)
    member._name_ = f"UNKNOWN_0x{value & 0xFFFFFFFF:X}"
    member._value_ = value
    return member


class WireEnum(enum.IntEnum):
    """An IntEnum for codes read off the wire: an unknown value becomes an ``UNKNOWN_0x..``
    pseudo-member instead of raising, so a newer peer's code never crashes a reader."""

    @classmethod
    def _missing_(cls, value: object) -> enum.IntEnum | None:
        return _unknown_member(cls, value)


class AuthDataFlag(enum.IntFlag):
    """Flags byte of the authenticator data (WebAuthn §6.1, CTAP 2.1 §6.1 and §6.2)."""

    UP = 0x01
    UV = 0x04
    AT = 0x40
    ED = 0x80


class Permission(enum.IntFlag):
    """pinUvAuthToken permissions (CTAP 2.1 §6.5.5.7)."""

    MC = 0x01
    GA = 0x02
    CM = 0x04
    BE = 0x08
    LBW = 0x10
    ACFG = 0x20


@enum.unique
class CoseAlg(WireEnum):
    """COSE algorithm identifiers the authenticator may offer (CTAP 2.1 §6.4 ``algorithms``)."""

    ES256 = -7
    EDDSA = -8
    ECDH_ES_HKDF_256 = -25


ALGORITHM_BY_NAME: dict[str, CoseAlg] = {"ES256": CoseAlg.ES256, "EdDSA": CoseAlg.EDDSA}


@enum.unique
class CredProtect(WireEnum):
    """credProtect levels (CTAP 2.1 §12.1)."""

    UV_OPTIONAL = 0x01
    UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST = 0x02
    UV_REQUIRED = 0x03


PUBLIC_KEY = "public-key"

# Extension identifiers (CTAP 2.1 §12).
EXT_CRED_PROTECT = "credProtect"
EXT_HMAC_SECRET = "hmac-secret"  # noqa: S105 - an extension name, not a secret
EXT_CRED_BLOB = "credBlob"
EXT_LARGE_BLOB_KEY = "largeBlobKey"
EXT_MIN_PIN_LENGTH = "minPinLength"

#: Largest credBlob the authenticator stores (CTAP 2.1 §6.4 maxCredBlobLength, at least 32).
MAX_CRED_BLOB_LENGTH = 32
#: Longest friendly name of a fingerprint template (CTAP 2.1 §6.7.3 maxTemplateFriendlyName).
MAX_TEMPLATE_FRIENDLY_NAME = 64
#: How many RP IDs setMinPINLength may list (CTAP 2.1 §6.4 maxRPIDsForSetMinPINLength).
MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH = 8
#: Longest PIN, in UTF-8 bytes (CTAP 2.1 §6.5.5.5: paddedNewPin is 64 bytes, at least one pad).
MAX_PIN_BYTES = 63

# Storage keys. Everything lives under ``user/`` so that Delete User Data (a crypto-erase of the
# user master key) destroys credentials, PIN, templates and blobs in one step.
KEY_PREFIX = "user/ctap/"
KEY_SECRET = KEY_PREFIX + "secret"
KEY_RESIDENT_PREFIX = KEY_PREFIX + "rk/"
KEY_COUNTER_PREFIX = KEY_PREFIX + "ctr/"
KEY_PIN = KEY_PREFIX + "pin"
KEY_PIN_RETRIES = KEY_PREFIX + "pin-retries"
KEY_UV_RETRIES = KEY_PREFIX + "uv-retries"
KEY_CONFIG = KEY_PREFIX + "config"
KEY_LARGE_BLOB = KEY_PREFIX + "large-blob"
KEY_BIO = KEY_PREFIX + "bio"
