"""What ``nymi-band diagnose`` collected: frozen, JSON-safe snapshots and where each came from.

Every piece of evidence sits in a :class:`Section` that names its source and how long it took;
a section that could not be collected carries no data and says why (``unavailable``). The rules
(:mod:`hosttools.diagnose.rules`) read only these objects, so they can be tested without I/O.
The band's own vocabulary (:class:`~nymi_device.protocol.model.BandInfo`, ``BandStatus``,
``BandEvent``) is reused as is.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

from nymi_device.protocol.model import BandEvent, BandInfo, BandStatus

T = TypeVar("T")

#: Section names, in report order.
SECTION_NAMES = ("band", "events", "fido2", "nfc", "ble", "server")


@dataclass(frozen=True)
class Section(Generic[T]):
    """One part of the evidence: its data, or the reason it could not be collected."""

    name: str
    source: str
    duration_ms: float
    data: T | None = None
    unavailable: str | None = None

    @property
    def available(self) -> bool:
        return self.data is not None


@dataclass(frozen=True)
class BandEvidence:
    info: BandInfo
    status: BandStatus


@dataclass(frozen=True)
class TimedEvent:
    """A band event with its time mapped to UTC (from the band's clock offset at collection)."""

    event: BandEvent
    at_utc: datetime


@dataclass(frozen=True)
class EventsEvidence:
    events: tuple[TimedEvent, ...]
    band_time_at_collection: float


@dataclass(frozen=True)
class Fido2Credential:
    rp_id: str
    credential_id: str
    """Hex, lower case (the one encoding the report uses for credential ids)."""
    user_name: str | None


@dataclass(frozen=True)
class Fido2Evidence:
    aaguid: str
    versions: tuple[str, ...]
    options: dict[str, bool]
    extensions: tuple[str, ...]
    transports: tuple[str, ...]
    credentials: tuple[Fido2Credential, ...] | None
    """Discoverable credentials (credential management), or None when the band refused them."""
    credential_count: int | None
    remaining_capacity: int | None
    credentials_unavailable: str | None = None


@dataclass(frozen=True)
class NfcApplet:
    name: str
    aid: str
    status: str
    """``answers``, ``refuses`` (needs the band authenticated) or ``absent``."""
    detail: str | None = None


@dataclass(frozen=True)
class NfcEvidence:
    reader: str
    atr: str | None
    identifier: str | None
    applets: tuple[NfcApplet, ...]


@dataclass(frozen=True)
class RssiSample:
    seconds: float
    """Since the scan started."""
    rssi: int


@dataclass(frozen=True)
class BleEvidence:
    address: str
    name: str | None
    samples: tuple[RssiSample, ...]
    tx_power: int | None
    advertised_state: tuple[str, ...]
    tap_average: float | None
    long_average: float | None
    proximity: str
    scan_seconds: float
    started_utc: datetime


@dataclass(frozen=True)
class NesAssignment:
    serial: str
    is_active: bool
    is_primary: bool
    notes: str
    created: str
    label: str | None


@dataclass(frozen=True)
class NesBand:
    serial: str
    device_id: str
    seos_enabled: bool
    secure_nfc: bool
    nfc_id: str | None
    owner: str | None
    assignment: NesAssignment | None
    has_external_authenticator: bool


@dataclass(frozen=True)
class NesUser:
    account: str
    policy_status: str
    individual_policy: str | None
    bands: tuple[NesAssignment, ...]
    self_service_own: bool
    """"Allow a user to re-enroll / re-register their Nymi Band" in the effective policy."""
    self_service_any: bool
    """"Allow a user to re-enroll any active Nymi Band" in the effective policy."""
    liveness_detection: bool
    policy: dict[str, Any]
    """The whole effective policy, as the server reports it."""

    @property
    def active_band(self) -> NesAssignment | None:
        return next((b for b in self.bands if b.is_active), None)


@dataclass(frozen=True)
class NesFido2Key:
    account: str
    serial: str
    rp_id: str
    credential_id: str
    """Hex, lower case."""
    created: str


@dataclass(frozen=True)
class NesEamEntry:
    id: int
    account: str
    serial: str
    kind: str
    identifier: str
    state: str
    state_label: str


@dataclass(frozen=True)
class NesAuditEvent:
    at_utc: datetime
    table: str
    op: str
    key: str
    actor: str
    summary: str


@dataclass(frozen=True)
class ServerEvidence:
    nes: str
    band: NesBand | None
    """None: the server has no record of this band."""
    owner: NesUser | None
    asking_user: NesUser | None
    """The user named with ``--user`` (the person who reports the problem), if any."""
    asking_user_unavailable: str | None
    """Why the ``--user`` could not be read (for example: no such user at this NES)."""
    fido2_keys: tuple[NesFido2Key, ...]
    eam_entries: tuple[NesEamEntry, ...]
    audit: tuple[NesAuditEvent, ...]


@dataclass(frozen=True)
class Evidence:
    """Everything collected about one band."""

    target: str
    collected_utc: datetime
    duration_ms: float
    band: Section[BandEvidence]
    events: Section[EventsEvidence]
    fido2: Section[Fido2Evidence]
    nfc: Section[NfcEvidence]
    ble: Section[BleEvidence]
    server: Section[ServerEvidence]
    traffic: tuple[str, ...] = field(default=(), repr=False)
    """Raw traffic lines (APDUs, CTAP frames, management frames) seen while collecting."""

    def sections(self) -> list[Section[Any]]:
        return [self.band, self.events, self.fido2, self.nfc, self.ble, self.server]


def jsonable(value: Any) -> Any:
    """Plain JSON values of evidence (enums as their values, times as ISO 8601 UTC)."""
    if hasattr(value, "__dataclass_fields__"):
        return {k: jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if hasattr(value, "value") and not isinstance(value, int | float | str | bool):
        return jsonable(value.value)
    return value
