"""What the band keeps: its identity (device data) and the wearer's data (user data) on flash.

Both are JSON records in :class:`~simulator.band.storage.FlashStorage`. The user record lives under
``user/`` and is therefore wrapped by the user-data master key that Delete User Data destroys.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from simulator.band.storage import FlashStorage

IDENTITY_KEY = "device/identity"
USER_KEY = "user/profile"


@dataclass(frozen=True)
class Identity:
    serial: str
    fixture: str
    device_id: str
    nfc_id: str
    ble_address: str

    @classmethod
    def new(cls, serial: str, fixture: str) -> Identity:
        nfc = bytearray(secrets.token_bytes(7))
        nfc[0] = 0x04  # NXP-style manufacturer byte, as most 7-byte UIDs start
        ble = bytearray(secrets.token_bytes(6))
        ble[0] |= 0xC0  # random static address: the two most significant bits set
        return cls(
            serial=serial,
            fixture=fixture,
            device_id=secrets.token_hex(16),
            nfc_id=nfc.hex().upper(),
            ble_address=":".join(f"{b:02X}" for b in ble),
        )


@dataclass(frozen=True)
class BandPolicy:
    """The settings an NBA writes to the band at enrollment (DOMAIN.md 2.5)."""

    liveness: bool = True
    haptics: bool = True

    def to_dict(self) -> dict[str, bool]:
        return asdict(self)


@dataclass(frozen=True)
class UserData:
    """Everything Delete User Data clears (DOMAIN.md 1.6 step 4)."""

    enrolled: bool = False
    template: str | None = None
    band_label: str | None = None
    corporate_authenticator: bool = False
    policy: BandPolicy | None = None
    fingerprint_failures: int = 0
    liveness_failures: int = 0
    locked_out: bool = False
    locked_since: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def with_(self, **changes: Any) -> UserData:
        return replace(self, **changes)

    def to_json(self) -> bytes:
        raw = asdict(self)
        return json.dumps(raw, sort_keys=True).encode()

    @classmethod
    def from_json(cls, data: bytes) -> UserData:
        raw = json.loads(data)
        policy = raw.pop("policy", None)
        return cls(policy=BandPolicy(**policy) if policy else None, **raw)


def load_identity(storage: FlashStorage) -> Identity | None:
    raw = storage.get(IDENTITY_KEY)
    return Identity(**json.loads(raw)) if raw else None


def save_identity(storage: FlashStorage, identity: Identity) -> None:
    storage.put(IDENTITY_KEY, json.dumps(asdict(identity), sort_keys=True).encode())


def load_user_data(storage: FlashStorage) -> UserData:
    raw = storage.get(USER_KEY)
    return UserData.from_json(raw) if raw else UserData()


def save_user_data(storage: FlashStorage, data: UserData) -> None:
    storage.put(USER_KEY, data.to_json())
