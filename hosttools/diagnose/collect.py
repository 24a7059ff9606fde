"""Collect the evidence about one band from whatever reaches it, each piece timed and sourced.

Sources, and only these:

* the band: :class:`nymi_device.band.Band` (``info``, ``status``, ``recent_events``) for any
  target a backend serves (``sim:``, ``ble:``);
* FIDO2: a python-fido2 ``CtapDevice`` (:func:`nymi_device.fido.open_ctap_device`, or the
  opener the caller passes) with ``Ctap2`` and ``CredentialManagement``;
* NFC: :mod:`nymi_device.transport.pcsc` (reader, ATR, UID, which applets answer);
* BLE: :func:`nymi_device.transport.ble.scan_bands` for RSSI samples, averaged as the Bluetooth
  endpoint does (:mod:`nymi_device.presence`);
* the server: the read methods of :class:`NesReader`.

Every section catches its own failure and is marked unavailable with the reason; nothing here
writes to the band or the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol, TypeVar

from fido2.ctap import CtapDevice, CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin

from hosttools.diagnose.evidence import (
    BandEvidence,
    BleEvidence,
    EventsEvidence,
    Evidence,
    Fido2Credential,
    Fido2Evidence,
    NesAssignment,
    NesAuditEvent,
    NesBand,
    NesEamEntry,
    NesFido2Key,
    NesUser,
    NfcApplet,
    NfcEvidence,
    RssiSample,
    Section,
    ServerEvidence,
    TimedEvent,
)
from nymi_device.band import Band
from nymi_device.errors import BandError
from nymi_device.fido import get_uv_token
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.model import BandInfo

T = TypeVar("T")
#: How many of the band's most recent events the report shows.
DEFAULT_EVENTS = 50
DEFAULT_AUDIT = 50


class JsonView(Protocol):
    def to_json(self) -> dict[str, Any]: ...


class NesReader(Protocol):
    """The server's read methods diagnostics uses (both the embedded server and the HTTP client
    have them)."""

    @property
    def name(self) -> str: ...

    def bands(self, serial_query: str = "", *, limit: int = 100) -> Sequence[JsonView]: ...

    def user(self, account: str) -> JsonView: ...

    def resolve_account(self, name: str) -> str: ...

    def effective_policy(self, account: str) -> JsonView: ...

    def fido2_keys(self, account: str | None = None, serial: str | None = None
                   ) -> Sequence[JsonView]: ...

    def eam_entries(self, account: str, *, include_deleted: bool = True
                    ) -> Sequence[JsonView]: ...

    def audit(self, *, table: str | None = None, account: str | None = None,
              key: str | None = None, limit: int = 1000) -> Sequence[JsonView]: ...


CtapOpener = Callable[[], AbstractContextManager[CtapDevice]]


@dataclass
class Sources:
    """What reaches the band and its server; ``None`` = not reachable, with the reason."""

    target: str
    band_options: Mapping[str, Any] = field(default_factory=dict)
    fido2: CtapOpener | None = None
    fido2_source: str = ""
    fido2_missing: str = "no FIDO2 transport for this band"
    nfc_reader: str | None = None
    nfc_missing: str = "no NFC reader given (--nfc READER)"
    ble_scan_s: float = 0.0
    ble_hci: str | None = None
    ble_missing: str = "no Bluetooth scan requested (--scan SECONDS)"
    nes: Callable[[], AbstractContextManager[NesReader]] | None = None
    nes_source: str = "NES"
    nes_missing: str = "no server given"
    user: str | None = None
    events: int = DEFAULT_EVENTS


# -- sections ----------------------------------------------------------------------------------

def _reason(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text if isinstance(exc, BandError) else f"{type(exc).__name__}: {text}"


def timed(name: str, source: str, work: Callable[[], T]) -> Section[T]:
    start = time.perf_counter()
    try:
        data = work()
    except Exception as exc:  # each section fails on its own; the report says why
        return Section(name, source, _ms(start), unavailable=_reason(exc))
    return Section(name, source, _ms(start), data=data)


def _ms(start: float) -> float:
    return round((time.perf_counter() - start) * 1000, 1)


def skipped(name: str, reason: str) -> Section[Any]:
    return Section(name, "-", 0.0, unavailable=reason)


def collect_band(target: str, options: Mapping[str, Any], last: int
                 ) -> tuple[BandEvidence, EventsEvidence]:
    async def go() -> tuple[BandEvidence, EventsEvidence]:
        async with Band.from_target(target, **dict(options)) as band:
            info, status = await band.info(), await band.status()
            events = await band.recent_events(last)
        now = datetime.now(UTC)
        timed_events = tuple(
            TimedEvent(e, now - timedelta(seconds=max(0.0, status.band_time - e.time)))
            for e in events)
        return BandEvidence(info, status), EventsEvidence(timed_events, status.band_time)
    return asyncio.run(go())


def _credentials(ctap2: Ctap2) -> tuple[tuple[Fido2Credential, ...], int, int | None]:
    client_pin = ClientPin(ctap2)
    token = get_uv_token(client_pin, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    credman = CredentialManagement(ctap2, client_pin.protocol, token)
    meta = credman.get_metadata()
    creds: list[Fido2Credential] = []
    for rp in credman.enumerate_rps() if meta.get(1, 0) else []:
        rp_id = str(rp[3]["id"])
        for cred in credman.enumerate_creds(rp[4]):
            user = cred[6]
            creds.append(Fido2Credential(rp_id, bytes(cred[7]["id"]).hex(), user.get("name")))
    remaining = meta.get(2)
    return tuple(creds), int(meta.get(1, 0)), None if remaining is None else int(remaining)


def collect_fido2(opener: CtapOpener) -> Fido2Evidence:
    with opener() as device:
        ctap2 = Ctap2(device)
        info = ctap2.get_info()
        credentials: tuple[Fido2Credential, ...] | None = None
        count: int | None = None
        remaining: int | None = None
        why: str | None = None
        if not CredentialManagement.is_supported(info):
            why = "no credential management on this authenticator"
        else:
            try:
                credentials, count, remaining = _credentials(ctap2)
            except CtapError as exc:
                why = (f"the band refused credential management ({exc.code.name}): it lists "
                       "credentials only while it is authenticated on the wrist")
        return Fido2Evidence(
            aaguid=str(info.aaguid), versions=tuple(info.versions),
            options={str(k): bool(v) for k, v in info.options.items()},
            extensions=tuple(str(x) for x in info.extensions),
            transports=tuple(str(x) for x in info.transports),
            credentials=credentials, credential_count=count, remaining_capacity=remaining,
            credentials_unavailable=why)


def collect_nfc(reader: str) -> NfcEvidence:
    from nymi_device.protocol.apdu import KNOWN_AIDS, SW, CommandApdu
    from nymi_device.transport.pcsc import open_connection

    with open_connection(reader) as connection:
        uid = connection.get_uid()
        applets = []
        for name, aid in KNOWN_AIDS.items():
            answer = connection.exchange(CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256))
            status = ("answers" if answer.sw == SW.OK else "refuses"
                      if answer.sw == SW.SECURITY_STATUS_NOT_SATISFIED else "absent")
            applets.append(NfcApplet(name, aid.hex().upper(), status, f"SW {answer.sw:04X}"))
        return NfcEvidence(connection.reader, connection.atr.hex().upper() or None,
                           uid.hex().upper() if uid else None, tuple(applets))


def collect_ble(address: str, serial: str, seconds: float, hci: str | None) -> BleEvidence:
    from nymi_device.presence import PresenceTracker
    from nymi_device.transport.ble import BandSighting, scan_bands

    started, start_utc = time.monotonic(), datetime.now(UTC)
    samples: list[RssiSample] = []
    tracker = PresenceTracker()
    last: list[BandSighting] = []

    def seen(sighting: BandSighting) -> None:
        if sighting.address.upper() != address.upper() and sighting.serial != serial:
            return
        at = time.monotonic() - started
        samples.append(RssiSample(round(at, 3), sighting.rssi))
        tracker.feed(serial, at, sighting.rssi,
                     sighting.beacon.flags if sighting.beacon else None)
        last[:] = [sighting]

    asyncio.run(scan_bands(seconds, hci=hci, on_sighting=seen))
    if not last:
        raise BandError(f"band {serial} ({address}) was not heard in {seconds:g} s of scanning: "
                        "out of range, radio off, or not advertising")
    presence = tracker.presence(serial)
    flags = last[0].beacon.flags if last[0].beacon else None
    names = [] if flags is None else [(m.name or "").lower().replace("_", "-")
                                      for m in type(flags) if m in flags]
    return BleEvidence(
        address=last[0].address, name=last[0].name, samples=tuple(samples),
        tx_power=last[0].tx_power, advertised_state=tuple(names),
        tap_average=None if presence is None else presence.tap_average,
        long_average=None if presence is None else presence.long_average,
        proximity="unknown" if presence is None else presence.proximity.value,
        scan_seconds=seconds, started_utc=start_utc)


# -- the server --------------------------------------------------------------------------------

def _assignment(raw: Mapping[str, Any]) -> NesAssignment:
    return NesAssignment(raw["serial"], bool(raw["is_active"]), bool(raw["is_primary"]),
                         str(raw.get("notes") or ""), str(raw["created"]), raw.get("label"))


def nes_user(nes: NesReader, account: str) -> NesUser:
    raw = nes.user(account).to_json()
    policy = nes.effective_policy(account).to_json()
    own = bool(policy.get("self_reenroll_own")) or bool(policy.get("self_reenroll_any"))
    return NesUser(
        account=raw["account"], policy_status=str(raw["policy_status"]),
        individual_policy=raw.get("individual_policy"),
        bands=tuple(_assignment(b) for b in raw["bands"]),
        self_service_own=own, self_service_any=own and bool(policy.get("self_reenroll_any")),
        liveness_detection=bool(policy.get("liveness_detection", True)), policy=policy)


def _nes_band(raw: Mapping[str, Any]) -> NesBand:
    row = raw.get("assignment")
    return NesBand(raw["serial"], str(raw["device_id"]), bool(raw["seos_enabled"]),
                   bool(raw["secure_nfc"]), raw.get("nfc_id"), raw.get("owner"),
                   None if row is None else _assignment(row),
                   bool(raw.get("has_external_authenticator")))


def _b64url_hex(text: str) -> str:
    import base64

    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).hex()


def _summary(raw: Mapping[str, Any]) -> str:
    before, after = raw.get("before") or {}, raw.get("after") or {}
    if raw["op"] == "update":
        changed = [f"{k}: {before.get(k)!r} → {after.get(k)!r}" for k in sorted(after)
                   if before.get(k) != after.get(k) and k not in ("updated_at", "version")]
        return "; ".join(changed[:4])
    values = after or before
    keep = [f"{k}={values[k]!r}" for k in ("serial", "account", "rp_id", "state", "is_active")
            if k in values]
    return ", ".join(keep)


def collect_server(nes: NesReader, serial: str, user: str | None) -> ServerEvidence:
    band_rows = [b.to_json() for b in nes.bands(serial)]
    band = next((_nes_band(b) for b in band_rows if b["serial"] == serial), None)
    owner = None if band is None or band.owner is None else nes_user(nes, band.owner)
    asking, asking_missing = None, None
    if user is not None:
        try:
            asking = nes_user(nes, nes.resolve_account(user))
        except Exception as exc:  # a user unknown here is evidence too, not a failure
            asking_missing = _reason(exc)
    accounts = sorted({u.account for u in (owner, asking) if u is not None})
    keys = {(k := key.to_json())["id"]: k for account in accounts
            for key in nes.fido2_keys(account)}
    if band is not None:
        keys.update({(k := key.to_json())["id"]: k for key in nes.fido2_keys(serial=serial)})
    eam = {(x := e.to_json())["id"]: x for account in accounts
           for e in nes.eam_entries(account)}
    audit = {(a := row.to_json())["id"]: a for account in accounts
             for row in nes.audit(account=account, limit=DEFAULT_AUDIT)}
    audit.update({(a := row.to_json())["id"]: a
                  for row in nes.audit(key=serial, limit=DEFAULT_AUDIT)})
    return ServerEvidence(
        nes=nes.name, band=band, owner=owner, asking_user=asking,
        asking_user_unavailable=asking_missing,
        fido2_keys=tuple(NesFido2Key(k["account"], k["serial"], k["rp_id"],
                                     _b64url_hex(k["credential_id"]), str(k["created"]))
                         for _, k in sorted(keys.items())),
        eam_entries=tuple(NesEamEntry(x["id"], x["account"], x["serial"], x["kind"],
                                      x["identifier"], x["state"], x["state_label"])
                          for _, x in sorted(eam.items()) if x["serial"] == serial
                          or (owner is not None and x["account"] == owner.account)),
        audit=tuple(NesAuditEvent(datetime.fromisoformat(str(a["at_utc"])).astimezone(UTC),
                                  a["table"], a["op"], str(a["key"]), a["actor"], _summary(a))
                    for _, a in sorted(audit.items())[-DEFAULT_AUDIT:]))


# -- traffic -----------------------------------------------------------------------------------

class _TrafficLog(logging.Handler):
    def __init__(self) -> None:
        super().__init__(TRAFFIC)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%H:%M:%S.%f")[:-3]
        self.lines.append(f"{stamp} {record.name} {record.getMessage()}")


@contextlib.contextmanager
def traffic_capture() -> Iterator[list[str]]:
    """Every frame the transports log at :data:`TRAFFIC` level while the block runs."""
    root = logging.getLogger("nymi_device")
    handler = _TrafficLog()
    level = root.level
    root.addHandler(handler)
    root.setLevel(TRAFFIC)
    try:
        yield handler.lines
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


# -- all of it ---------------------------------------------------------------------------------

def serial_of(target: str, band: BandInfo | None) -> str:
    if band is not None:
        return band.serial
    return target.partition(":")[2]


def collect(sources: Sources) -> Evidence:
    """Collect every section; never raises for an unreachable piece."""
    started, start_utc = time.perf_counter(), datetime.now(UTC)
    with traffic_capture() as traffic:
        both = timed("band", sources.target,
                     lambda: collect_band(sources.target, sources.band_options, sources.events))
        band_data = None if both.data is None else both.data[0]
        band: Section[BandEvidence] = Section("band", both.source, both.duration_ms,
                                              band_data, both.unavailable)
        events: Section[EventsEvidence] = Section(
            "events", both.source, 0.0, None if both.data is None else both.data[1],
            both.unavailable)
        info = None if band_data is None else band_data.info
        serial = serial_of(sources.target, info)
        opener = sources.fido2
        fido2 = (timed("fido2", sources.fido2_source, lambda: collect_fido2(opener))
                 if opener is not None else skipped("fido2", sources.fido2_missing))
        nfc = (timed("nfc", f"pcsc:{sources.nfc_reader}",
                     lambda: collect_nfc(sources.nfc_reader or ""))
               if sources.nfc_reader is not None else skipped("nfc", sources.nfc_missing))
        ble = _ble_section(sources, info, serial)
        server = _server_section(sources, serial)
    return Evidence(sources.target, start_utc, _ms(started), band, events, fido2, nfc, ble,
                    server, tuple(traffic))


def _ble_section(sources: Sources, info: BandInfo | None, serial: str) -> Section[BleEvidence]:
    if sources.ble_scan_s <= 0:
        return skipped("ble", sources.ble_missing)
    address = (sources.target[4:] if sources.target.startswith("ble:")
               else (info.ble_address if info else ""))
    if not address:
        return skipped("ble", "the band's Bluetooth address is not known (the band was not "
                              "reached)")
    source = f"scan on {sources.ble_hci or 'the system radio'}"
    return timed("ble", source,
                 lambda: collect_ble(address, serial, sources.ble_scan_s, sources.ble_hci))


def _server_section(sources: Sources, serial: str) -> Section[ServerEvidence]:
    opener = sources.nes
    if opener is None:
        return skipped("server", sources.nes_missing)

    def read() -> ServerEvidence:
        with opener() as nes:
            return collect_server(nes, serial, sources.user)
    return timed("server", sources.nes_source, read)
