"""What a band is and what state it is in: the vocabulary host and band share.

Pure data: enums and frozen dataclasses with ``to_dict`` / ``from_dict`` (JSON-safe), no I/O.
The state names follow DOMAIN.md 10.1; screen strings are reproduced exactly in
:mod:`nymi_device.protocol.screens`.
"""

from __future__ import annotations

import enum
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any


class PowerState(enum.StrEnum):
    OFF = "off"
    SLEEP = "sleep"
    AWAKE = "awake"


class EnrollmentState(enum.StrEnum):
    UNENROLLED = "unenrolled"
    SETUP_CODE_SHOWN = "setup-code-shown"
    ADD_USER = "add-user"
    CAPTURING = "capturing"
    LABELING = "labeling"
    APPLYING_POLICY = "applying-policy"
    ENROLLED = "enrolled"


class AuthState(enum.StrEnum):
    DEAUTHENTICATED = "deauthenticated"
    AUTH_REQUIRED = "auth-required"
    AUTH_IN_PROGRESS = "auth-in-progress"
    AUTHENTICATED = "authenticated"
    LOCKED_OUT = "locked-out"


class Haptic(enum.StrEnum):
    SINGLE = "single"
    DOUBLE_QUICK = "double-quick"


class Button(enum.StrEnum):
    TOP = "top"
    BOTTOM = "bottom"


class EventKind(enum.StrEnum):
    """Every observable change of a band's state is one of these."""

    SCREEN = "screen"
    HAPTIC = "haptic"
    POWER = "power"
    WRIST = "wrist"
    CHARGER = "charger"
    BUTTON = "button"
    BATTERY = "battery"
    ENROLLMENT = "enrollment"
    AUTH = "auth"
    CAPTURE = "capture"
    FINGER = "finger"
    WIPE = "wipe"
    RESTART = "restart"
    LOCKOUT = "lockout"
    REFUSED = "refused"


@dataclass(frozen=True)
class BandEvent:
    """One observable change, stamped with band time (seconds) and, where the band had a wall
    clock, the UTC wall time at which it emitted the event (what lines it up with the
    enterprise server's audit, which is UTC)."""

    time: float
    kind: EventKind
    data: dict[str, Any] = field(default_factory=dict)
    utc: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"time": round(self.time, 6), "kind": self.kind.value, "data": dict(self.data),
                "utc": utc_text(self.utc) if self.utc is not None else None}

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BandEvent:
        utc = raw.get("utc")
        return cls(float(raw["time"]), EventKind(raw["kind"]), dict(raw.get("data", {})),
                   parse_utc(utc) if isinstance(utc, str) else None)


def utc_now() -> datetime:
    """The wall clock, UTC, to the millisecond (what an event's ``utc`` holds)."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def utc_text(when: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and ``Z``: ``2026-05-04T10:15:56.223Z``."""
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{when.microsecond // 1000:03d}Z"


def parse_utc(text: str) -> datetime:
    """The inverse of :func:`utc_text` (any ISO 8601 time; naive times are taken as UTC)."""
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


@dataclass(frozen=True)
class BandInfo:
    """Identity and capabilities: what does not change while a band is in use."""

    serial: str
    model: str
    fixture: str
    generation: str
    manufacturer: str
    firmware_version: str
    hardware_revision: str
    device_id: str
    nfc_id: str
    ble_address: str
    capabilities: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BandInfo:
        return cls(**raw)


@dataclass(frozen=True)
class BandStatus:
    """The band's present state, as a support engineer would want to see it."""

    serial: str
    band_time: float
    power: PowerState
    on_wrist: bool
    on_charger: bool
    battery_pct: float
    screen: str
    enrollment: EnrollmentState
    auth: AuthState
    band_label: str | None
    corporate_authenticator: bool
    liveness: bool
    haptics: bool
    fingerprint_failures: int
    liveness_failures: int
    locked_out: bool

    def to_dict(self) -> dict[str, Any]:
        raw = asdict(self)
        for key in ("power", "enrollment", "auth"):
            raw[key] = str(raw[key])
        raw["battery_pct"] = round(self.battery_pct, 2)
        raw["band_time"] = round(self.band_time, 3)
        return raw

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> BandStatus:
        data = dict(raw)
        data["power"] = PowerState(data["power"])
        data["enrollment"] = EnrollmentState(data["enrollment"])
        data["auth"] = AuthState(data["auth"])
        return cls(**data)
