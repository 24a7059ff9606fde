"""Bodies of the band management commands and events (docs/protocol.md §6, §8, §9).

Each result has a frozen dataclass (or reuses :mod:`nymi_device.protocol.model`) and a pair of
codecs between it and an integer-keyed body map. Decoders check every key they read and raise
:class:`~nymi_device.protocol.management.MessageError` with the status the caller chooses:
``INVALID_PARAMETER`` for a request body on the band, ``INVALID_MESSAGE`` for a response body on
the host. Unknown keys are ignored (§6).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from nymi_device.errors import StatusCode
from nymi_device.protocol.management import Body, MessageError
from nymi_device.protocol.management_cbor import CborError, decode, encode
from nymi_device.protocol.model import (
    AuthState,
    BandEvent,
    BandInfo,
    BandStatus,
    EnrollmentState,
    EventKind,
    PowerState,
)

__all__ = [
    "INFO_KEYS",
    "MAX_EVENTS_PER_PAGE",
    "REDACTED_EVENT_FIELDS",
    "STATUS_KEYS",
    "BodyReader",
    "Capabilities",
    "EventLogPage",
    "LoggedEvent",
    "PolicySettings",
    "WipeStatus",
    "decode_capabilities",
    "decode_event",
    "decode_event_log_page",
    "decode_info",
    "decode_policy",
    "decode_status",
    "decode_wipe_status",
    "encode_capabilities",
    "encode_event",
    "encode_event_log_page",
    "encode_info",
    "encode_policy",
    "encode_status",
    "encode_wipe_status",
]

#: Most events one GET_EVENT_LOG response carries (§8.6, §12).
MAX_EVENTS_PER_PAGE = 64
#: Event data fields the protocol never carries (§8.4, §9): the setup code proves that the
#: person at the host can see the band's screen, so it must not travel from the band.
REDACTED_EVENT_FIELDS = frozenset({"setup_code"})


class BodyReader:
    """Typed reads of one body; every violation is a :class:`MessageError` with ``status``."""

    def __init__(self, body: Body, status: StatusCode, what: str) -> None:
        self.body = body
        self.status = status
        self.what = what

    def fail(self, key: int, expected: str) -> MessageError:
        return MessageError(self.status, f"{self.what}: key {key} must be {expected}")

    def has(self, key: int) -> bool:
        return key in self.body

    def uint(self, key: int, limit: int = (1 << 64) - 1, default: int | None = None) -> int:
        value = self.body.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
            raise self.fail(key, f"an integer 0..{limit}")
        return value

    def boolean(self, key: int) -> bool:
        value = self.body.get(key)
        if not isinstance(value, bool):
            raise self.fail(key, "true or false")
        return value

    def number(self, key: int) -> float:
        value = self.body.get(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, "a number")
        return float(value)

    def optional_number(self, key: int) -> float | None:
        return None if self.body.get(key) is None else self.number(key)

    def text(self, key: int, max_length: int = 4096) -> str:
        value = self.body.get(key)
        if not isinstance(value, str) or len(value) > max_length:
            raise self.fail(key, f"text of at most {max_length} characters")
        return value

    def optional_text(self, key: int, max_length: int = 4096) -> str | None:
        if key not in self.body:
            raise self.fail(key, "text or null")
        return None if self.body[key] is None else self.text(key, max_length)

    def raw_bytes(self, key: int, size: int | None = None) -> bytes:
        value = self.body.get(key)
        if not isinstance(value, bytes) or (size is not None and len(value) != size):
            raise self.fail(key, f"{size} bytes" if size is not None else "bytes")
        return value

    def array(self, key: int, max_items: int = 4096) -> list[object]:
        value = self.body.get(key)
        if not isinstance(value, list) or len(value) > max_items:
            raise self.fail(key, f"an array of at most {max_items} items")
        return value

    def text_map(self, key: int) -> dict[str, Any]:
        value = self.body.get(key)
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value):
            raise self.fail(key, "a map with text keys")
        return dict(value)

    def int_map(self, key: int) -> Body:
        value = self.body.get(key)
        if not isinstance(value, dict) or not all(
            isinstance(k, int) and not isinstance(k, bool) for k in value
        ):
            raise self.fail(key, "a map with integer keys")
        return dict(value)

    def enum_text(self, key: int, enum_type: type[Any]) -> Any:
        value = self.text(key, 64)
        try:
            return enum_type(value)
        except ValueError:
            raise self.fail(key, f"one of {', '.join(m.value for m in enum_type)}") from None


# -- §8.1 identity ------------------------------------------------------------------------------

INFO_KEYS: dict[int, str] = {
    1: "serial", 2: "model", 3: "fixture", 4: "generation", 5: "manufacturer",
    6: "firmware_version", 7: "hardware_revision", 8: "device_id", 9: "nfc_id",
    10: "ble_address", 11: "capabilities",
}
_INFO_VERSIONS = 12


def encode_info(info: BandInfo, versions: Sequence[int]) -> Body:
    body: Body = {key: getattr(info, name) for key, name in INFO_KEYS.items()}
    body[11] = dict(info.capabilities)
    body[_INFO_VERSIONS] = list(versions)
    return body


def decode_info(body: Body, status: StatusCode = StatusCode.INVALID_MESSAGE) -> BandInfo:
    reader = BodyReader(body, status, "GET_INFO")
    fields: dict[str, Any] = {
        name: reader.text(key, 256) for key, name in INFO_KEYS.items() if key != 11
    }
    fields["capabilities"] = reader.text_map(11)
    return BandInfo(**fields)


# -- §8.2 status --------------------------------------------------------------------------------

STATUS_KEYS: dict[int, str] = {
    1: "serial", 2: "band_time", 3: "power", 4: "on_wrist", 5: "on_charger", 6: "battery_pct",
    7: "screen", 8: "enrollment", 9: "auth", 10: "band_label", 11: "corporate_authenticator",
    12: "liveness", 13: "haptics", 14: "fingerprint_failures", 15: "liveness_failures",
    16: "locked_out",
}


def encode_status(status: BandStatus) -> Body:
    body: Body = {key: getattr(status, name) for key, name in STATUS_KEYS.items()}
    for key in (3, 8, 9):  # power, enrollment, auth: their text values
        body[key] = str(body[key])
    body[2], body[6] = float(status.band_time), float(status.battery_pct)
    return body


def decode_status(body: Body, status: StatusCode = StatusCode.INVALID_MESSAGE) -> BandStatus:
    r = BodyReader(body, status, "GET_STATUS")
    return BandStatus(
        serial=r.text(1, 64),
        band_time=r.number(2),
        power=r.enum_text(3, PowerState),
        on_wrist=r.boolean(4),
        on_charger=r.boolean(5),
        battery_pct=r.number(6),
        screen=r.text(7, 256),
        enrollment=r.enum_text(8, EnrollmentState),
        auth=r.enum_text(9, AuthState),
        band_label=r.optional_text(10, 256),
        corporate_authenticator=r.boolean(11),
        liveness=r.boolean(12),
        haptics=r.boolean(13),
        fingerprint_failures=r.uint(14),
        liveness_failures=r.uint(15),
        locked_out=r.boolean(16),
    )


# -- §8.4 policy --------------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicySettings:
    """The settings an NBA writes to a band (DOMAIN.md 2.5): ``{1: liveness, 2: haptics}``."""

    liveness: bool = True
    haptics: bool = True


def encode_policy(policy: PolicySettings) -> Body:
    return {1: policy.liveness, 2: policy.haptics}


def decode_policy(body: Body, status: StatusCode = StatusCode.INVALID_PARAMETER) -> PolicySettings:
    reader = BodyReader(body, status, "policy")
    return PolicySettings(liveness=reader.boolean(1), haptics=reader.boolean(2))


# -- §6 capabilities ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Capabilities:
    """What a band serves in a session (§6), signed with the handshake."""

    commands: frozenset[int]
    event_kinds: tuple[str, ...]
    max_message: int
    max_events_per_page: int

    def supports(self, command: int) -> bool:
        return command in self.commands


def encode_capabilities(caps: Capabilities) -> bytes:
    return encode({
        1: sorted(caps.commands), 2: list(caps.event_kinds), 3: caps.max_message,
        4: caps.max_events_per_page,
    })


def decode_capabilities(
    data: bytes, status: StatusCode = StatusCode.INVALID_MESSAGE
) -> Capabilities:
    try:
        body = decode(data)
    except CborError as exc:
        raise MessageError(status, f"capabilities: {exc}") from None
    if not isinstance(body, dict) or not all(
        isinstance(k, int) and not isinstance(k, bool) for k in body
    ):
        raise MessageError(status, "capabilities must be a map with integer keys")
    reader = BodyReader(dict(body), status, "capabilities")
    commands = reader.array(1, 256)
    kinds = reader.array(2, 256)
    if not all(isinstance(c, int) and not isinstance(c, bool) for c in commands):
        raise reader.fail(1, "an array of command codes")
    if not all(isinstance(k, str) for k in kinds):
        raise reader.fail(2, "an array of event kinds")
    return Capabilities(
        commands=frozenset(c for c in commands if isinstance(c, int)),
        event_kinds=tuple(k for k in kinds if isinstance(k, str)),
        max_message=reader.uint(3, 0xFFFF),
        max_events_per_page=reader.uint(4, 0xFFFF),
    )


# -- §9 events ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoggedEvent:
    """One event with its position in the band's log (§9)."""

    index: int
    event: BandEvent


def _plain(value: object) -> object:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    return str(value)


def encode_event(index: int, event: BandEvent) -> Body:
    """The event map of §9, without the fields the protocol never carries."""
    data = {
        str(k): _plain(v) for k, v in event.data.items() if k not in REDACTED_EVENT_FIELDS
    }
    body: Body = {1: index, 2: float(event.time), 3: str(event.kind), 4: data}
    if event.utc is not None:
        body[5] = round(event.utc.timestamp(), 3)
    return body


def decode_event(body: Body, status: StatusCode = StatusCode.INVALID_MESSAGE) -> LoggedEvent | None:
    """The event, or ``None`` for a kind this host does not know (hosts skip those, §9)."""
    reader = BodyReader(body, status, "event")
    index, time = reader.uint(1), reader.number(2)
    kind, data = reader.text(3, 64), reader.text_map(4)
    wall = reader.optional_number(5)
    try:
        event_kind = EventKind(kind)
    except ValueError:
        return None
    utc = None
    if wall is not None:
        if not 0 <= wall < 253402300800:  # up to 9999-12-31
            raise reader.fail(5, "POSIX seconds within years 1970..9999")
        utc = datetime.fromtimestamp(wall, UTC)
    return LoggedEvent(index, BandEvent(time, event_kind, data, utc))


@dataclass(frozen=True)
class EventLogPage:
    """One GET_EVENT_LOG answer (§8.6)."""

    events: tuple[LoggedEvent, ...]
    next: int
    end: int
    first: int

    @property
    def complete(self) -> bool:
        """Whether this page reached the end of the log."""
        return self.next >= self.end


def encode_event_log_page(events: Iterable[Body], next_index: int, end: int, first: int) -> Body:
    return {1: list(events), 2: next_index, 3: end, 4: first}


def decode_event_log_page(
    body: Body, status: StatusCode = StatusCode.INVALID_MESSAGE
) -> EventLogPage:
    reader = BodyReader(body, status, "GET_EVENT_LOG")
    events: list[LoggedEvent] = []
    for item in reader.array(1, MAX_EVENTS_PER_PAGE):
        if not isinstance(item, dict):
            raise reader.fail(1, "an array of event maps")
        event = decode_event(item, status)
        if event is not None:
            events.append(event)
    return EventLogPage(tuple(events), reader.uint(2), reader.uint(3), reader.uint(4))


# -- §8.7 Delete User Data status ---------------------------------------------------------------


@dataclass(frozen=True)
class WipeStatus:
    """Whether the Delete User Data gesture is possible now, and whether a wipe happened (§8.7)."""

    gesture: str
    hold_s: float
    ready: bool
    on_wrist: bool
    on_charger: bool
    enrollment: EnrollmentState
    running: bool
    last_wiped: float | None


def encode_wipe_status(status: WipeStatus) -> Body:
    return {
        1: status.gesture, 2: float(status.hold_s), 3: status.ready, 4: status.on_wrist,
        5: status.on_charger, 6: str(status.enrollment), 7: status.running,
        8: None if status.last_wiped is None else float(status.last_wiped),
    }


def decode_wipe_status(body: Body, status: StatusCode = StatusCode.INVALID_MESSAGE) -> WipeStatus:
    r = BodyReader(body, status, "GET_DELETE_USER_DATA_STATUS")
    return WipeStatus(
        gesture=r.text(1, 64),
        hold_s=r.number(2),
        ready=r.boolean(3),
        on_wrist=r.boolean(4),
        on_charger=r.boolean(5),
        enrollment=r.enum_text(6, EnrollmentState),
        running=r.boolean(7),
        last_wiped=r.optional_number(8),
    )
