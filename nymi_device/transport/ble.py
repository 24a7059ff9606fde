"""Bands over Bluetooth LE, with bleak: the ``ble:ADDRESS`` backend and FIDO over BLE.

Which radio: without ``hci`` (and without ``$NYMI_BLE_HCI``) bleak uses the operating system's
stack (BlueZ on Linux); with ``hci="tcp-client:127.0.0.1:PORT"`` (the simulator's virtual radio),
``hci="usb:0"`` (a dongle without BlueZ) or an in-process Bumble transport, bleak runs our Bumble
backend (:mod:`nymi_device.transport.bumble_backend`). The code above is the same either way.

* :class:`BleBandBackend` (``ble:ADDRESS``): identity from Device Information (0x180A), the
  battery level (0x180F) and the band's advertisement. Status, the event log and live events go
  over the band management protocol (:mod:`.ble_management`, docs/protocol.md) in a secure
  session with a band whose certificate chains to the CA the host trusts; without the service
  (a real band) they raise :class:`~nymi_device.errors.BandUnreachableError` (``UNSUPPORTED``).
* :class:`CtapBleDevice`: a python-fido2 ``CtapDevice`` over the FIDO service (CTAP 2.1 §11.4),
  so ``Ctap2``, ``ClientPin``, ``CredentialManagement`` and ``Fido2Client`` run unchanged::

      with CtapBleDevice.connect("C4:12:34:56:78:9A", hci="tcp-client:127.0.0.1:9001") as dev:
          print(Ctap2(dev).get_info().versions)

  From asyncio code that already holds a connected ``BleakClient``:
  ``device = await CtapBleDevice.open(client)``, then call it from a worker thread.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import os
import queue
import struct
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

from bleak import BleakClient, BleakScanner
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bleak.exc import BleakDeviceNotFoundError, BleakError
from fido2.ctap import STATUS, CtapDevice, CtapError
from fido2.hid import CAPABILITY, CTAPHID

from nymi_device.backend import BandBackend, Feature
from nymi_device.errors import (
    BandUnreachableError,
    FeatureUnavailableError,
    InvalidTargetError,
    UnreachableReason,
)
from nymi_device.management_client import ManagementClient
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol import fido_ble as fb
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.model import AuthState, BandEvent, BandInfo, BandStatus
from nymi_device.sync import LoopThread
from nymi_device.transport import ble_management as bm
from nymi_device.transport.bumble_backend import (
    HCI_ENV,
    BleakClientBumble,
    BleakScannerBumble,
    HciSpec,
    HciTransportError,
)

__all__ = [
    "BAND_NAME_PREFIXES",
    "DEFAULT_TIMEOUT",
    "BandSighting",
    "BleBandBackend",
    "CtapBleDevice",
    "connect_band",
    "find_band",
    "open_ble_ctap_device",
    "scan_bands",
]

logger = logging.getLogger(__name__)

#: Seconds to find, connect, or wait for the next fragment or keepalive before giving up.
DEFAULT_TIMEOUT = 10.0
T = TypeVar("T")
#: GET_EVENT_LOG from here returns no events, only where the log ends (docs/protocol.md §8.6).
_PAST_THE_END = (1 << 64) - 1


def _hci(hci: HciSpec | None) -> HciSpec | None:
    return hci if hci is not None else (os.environ.get(HCI_ENV) or None)


def _scanner_kwargs(hci: HciSpec | None) -> dict[str, Any]:
    spec = _hci(hci)
    return {} if spec is None else {"backend": BleakScannerBumble, "hci": spec}


def _client_kwargs(hci: HciSpec | None) -> dict[str, Any]:
    spec = _hci(hci)
    return {} if spec is None else {"backend": BleakClientBumble, "hci": spec}


def _no_os_stack(target: str, exc: OSError) -> BandUnreachableError:
    """The OS Bluetooth stack (BlueZ over D-Bus) could not be reached at all."""
    return BandUnreachableError(
        f"{target}: the operating system's Bluetooth stack (BlueZ over D-Bus) is not reachable "
        f"({exc.strerror or exc}); start bluetoothd, or choose a radio with --hci (usb:0 for a "
        "dongle, tcp-client:127.0.0.1:PORT for the simulator's)", UnreachableReason.NO_ADAPTER)


def _unreachable(target: str, exc: BaseException) -> BandUnreachableError:
    if isinstance(exc, BleakDeviceNotFoundError):
        return BandUnreachableError(f"{target}: not in range (no advertisement)",
                                    UnreachableReason.NOT_FOUND)
    if isinstance(exc, TimeoutError):
        return BandUnreachableError(f"{target}: timed out", UnreachableReason.OUT_OF_RANGE)
    if isinstance(exc, HciTransportError):
        return BandUnreachableError(f"{target}: {exc}", UnreachableReason.NO_ADAPTER)
    return BandUnreachableError(f"{target}: {exc}", UnreachableReason.TRANSPORT_FAILED)


# --- scanning ---------------------------------------------------------------------------------

@dataclass(frozen=True)
class BandSighting:
    """One band heard on the air (the latest advertisement from it)."""

    address: str
    name: str | None
    rssi: int
    tx_power: int | None
    beacon: fb.BandBeacon | None
    fido_ble: bool
    device: BLEDevice = field(repr=False, compare=False)

    @property
    def serial(self) -> str | None:
        return self.beacon.serial if self.beacon else None

    @classmethod
    def from_advertisement(cls, device: BLEDevice, data: AdvertisementData) -> BandSighting:
        raw = data.manufacturer_data.get(fb.COMPANY_ID)
        return cls(
            address=device.address, name=data.local_name, rssi=data.rssi,
            tx_power=data.tx_power,
            beacon=fb.decode_manufacturer_data(raw) if raw is not None else None,
            fido_ble=fb.FIDO_SERVICE in data.service_uuids, device=device,
        )


#: Advertised names that mark a band without our beacon (a real band).
BAND_NAME_PREFIXES = ("Nymi",)


async def scan_bands(
    seconds: float = 3.0,
    *,
    hci: HciSpec | None = None,
    on_sighting: Callable[[BandSighting], None] | None = None,
    name_prefixes: tuple[str, ...] = BAND_NAME_PREFIXES,
) -> list[BandSighting]:
    """Listen for ``seconds``; every band heard, by address.

    A band is an advertiser carrying our beacon (simulated bands, :mod:`.fido_ble` layout) or
    whose name starts with one of ``name_prefixes``; ``on_sighting`` sees each advertisement.
    """
    found: dict[str, BandSighting] = {}

    def detected(device: BLEDevice, data: AdvertisementData) -> None:
        sighting = BandSighting.from_advertisement(device, data)
        if sighting.beacon is None and not (
                sighting.name and sighting.name.startswith(name_prefixes)):
            return
        found[sighting.address] = sighting
        if on_sighting is not None:
            on_sighting(sighting)

    try:
        async with BleakScanner(detected, **_scanner_kwargs(hci)):
            await asyncio.sleep(seconds)
    except BleakError as exc:
        raise _unreachable("scan", exc) from exc
    except OSError as exc:
        if hci is not None:
            raise
        raise _no_os_stack("scan", exc) from exc
    return sorted(found.values(), key=lambda s: s.address)


async def find_band(address: str, *, hci: HciSpec | None = None,
                    timeout: float = DEFAULT_TIMEOUT) -> BandSighting:
    """Wait for an advertisement from ``address``."""
    loop = asyncio.get_running_loop()
    found: asyncio.Future[BandSighting] = loop.create_future()
    wanted = address.upper()

    def detected(device: BLEDevice, data: AdvertisementData) -> None:
        if device.address.upper() == wanted and not found.done():
            found.set_result(BandSighting.from_advertisement(device, data))

    try:
        async with BleakScanner(detected, **_scanner_kwargs(hci)):
            return await asyncio.wait_for(found, timeout)
    except TimeoutError:
        raise BandUnreachableError(f"ble:{address}: no advertisement within {timeout:g} s",
                                   UnreachableReason.NOT_FOUND) from None
    except BleakError as exc:
        raise _unreachable(f"ble:{address}", exc) from exc
    except OSError as exc:
        if hci is not None:
            raise
        raise _no_os_stack(f"ble:{address}", exc) from exc


async def connect_band(sighting: BandSighting | str, *, hci: HciSpec | None = None,
                       timeout: float = DEFAULT_TIMEOUT, pair: bool = False,
                       disconnected_callback: Callable[[BleakClient], None] | None = None,
                       ) -> BleakClient:
    """A connected (and, with ``pair``, paired) ``BleakClient`` on the right backend."""
    target = sighting.device if isinstance(sighting, BandSighting) else sighting
    client = BleakClient(target, disconnected_callback, timeout=timeout, **_client_kwargs(hci))
    try:
        await client.connect()
        if pair:
            await client.pair()
    except (BleakError, TimeoutError) as exc:
        with contextlib.suppress(Exception):
            await client.disconnect()
        raise _unreachable(f"ble:{client.address}", exc) from exc
    except OSError as exc:
        if hci is not None:
            raise
        raise _no_os_stack(f"ble:{client.address}", exc) from exc
    return client


# --- the ble:ADDRESS backend ------------------------------------------------------------------

class BleBandBackend(BandBackend):
    """A band reached over BLE with bleak (BlueZ, or a Bumble host on ``hci``).

    Options: ``hci`` (a Bumble transport moniker), ``timeout`` (seconds), ``pair`` (pair on
    connect; by default pairing happens when the band first asks for it), ``trusted_ca`` (the CA
    vouching for band identities: PEM path or certificate; default ``$NYMI_TRUSTED_CA``).
    """

    scheme = "ble"

    def __init__(self, address: str, *, hci: HciSpec | None = None,
                 timeout: float = DEFAULT_TIMEOUT, pair: bool = False,
                 trusted_ca: bm.TrustedCa | None = None, fido2: str | None = None,
                 fido2_options: Mapping[str, Any] | None = None) -> None:
        self.address = address.upper()
        self.hci = _hci(hci)
        self.timeout = timeout
        self.pair = pair
        self.trusted_ca = trusted_ca
        #: Where the band's authenticator is reached when not over this link (``pcsc:READER``
        #: for a band whose FIDO2 is NFC only, as a real Nymi band's is).
        self.fido2 = fido2
        self.fido2_options = dict(fido2_options or {})
        self.client: BleakClient | None = None
        self.sighting: BandSighting | None = None
        self._management: bm.BleManagement | None = None

    @classmethod
    def from_address(cls, address: str, options: Mapping[str, Any]) -> BleBandBackend:
        unknown = set(options) - {"hci", "timeout", "pair", "trusted_ca", "fido2",
                                  "fido2_options"}
        if unknown:
            raise InvalidTargetError(f"unknown ble option(s): {', '.join(sorted(unknown))}")
        return cls(address, hci=options.get("hci"),
                   timeout=float(options.get("timeout", DEFAULT_TIMEOUT)),
                   pair=bool(options.get("pair", False)), trusted_ca=options.get("trusted_ca"),
                   fido2=options.get("fido2"), fido2_options=options.get("fido2_options"))

    @property
    def backend_id(self) -> str:
        radio = self.hci if isinstance(self.hci, str) else (
            "in-process Bumble" if self.hci is not None else "OS Bluetooth stack")
        return f"ble:{self.address} via {radio}"

    async def connect(self) -> None:
        if self.client is not None:
            return
        self.sighting = await find_band(self.address, hci=self.hci, timeout=self.timeout)
        self.client = await connect_band(self.sighting, hci=self.hci, timeout=self.timeout,
                                         pair=self.pair,
                                         disconnected_callback=self._on_disconnected)

    def _on_disconnected(self, _client: BleakClient) -> None:
        if self._management is not None:
            self._management.disconnected()

    async def close(self) -> None:
        management, self._management = self._management, None
        if management is not None and self.client is not None:
            with contextlib.suppress(Exception):
                await management.aclose()
        client, self.client = self.client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.disconnect()

    def _client(self) -> BleakClient:
        if self.client is None:
            raise BandUnreachableError(f"ble:{self.address}: not connected",
                                       UnreachableReason.TRANSPORT_FAILED)
        return self.client

    async def _read_text(self, uuid: str) -> str | None:
        client = self._client()
        if client.services.get_characteristic(uuid) is None:
            return None
        return bytes(await client.read_gatt_char(uuid)).decode("utf-8", errors="replace")

    async def battery_level(self) -> int | None:
        client = self._client()
        if client.services.get_characteristic(fb.BATTERY_LEVEL) is None:
            return None
        return int((await client.read_gatt_char(fb.BATTERY_LEVEL))[0])

    async def info(self) -> BandInfo:
        """The band's identity: proven by the band itself (GET_INFO in the management
        protocol's secure session) where it offers that; otherwise from Device Information,
        where the model-level facts a real band does not publish over standard BLE (fixture,
        generation, device and NFC identifiers) are empty."""
        client = self._client()
        if bm.offers_management(client) and bm.resolve_trusted_ca(self.trusted_ca) is not None:
            return await (await self._session("the band's identity")).identity()
        return await self._standard_info()

    async def _standard_info(self) -> BandInfo:
        client = self._client()
        try:
            texts = {uuid: await self._read_text(uuid) for uuid in (
                fb.MANUFACTURER_NAME, fb.MODEL_NUMBER, fb.SERIAL_NUMBER,
                fb.FIRMWARE_REVISION, fb.HARDWARE_REVISION)}
            battery = await self.battery_level()
        except BleakError as exc:
            raise _unreachable(f"ble:{self.address}", exc) from exc
        sighting = self.sighting
        serial = texts[fb.SERIAL_NUMBER] or (sighting.serial if sighting else None) or ""
        return BandInfo(
            serial=serial, model=texts[fb.MODEL_NUMBER] or "", fixture="", generation="",
            manufacturer=texts[fb.MANUFACTURER_NAME] or "",
            firmware_version=texts[fb.FIRMWARE_REVISION] or "",
            hardware_revision=texts[fb.HARDWARE_REVISION] or "",
            device_id="", nfc_id="", ble_address=self.address,
            capabilities={
                "fido_ble": client.services.get_service(fb.FIDO_SERVICE) is not None,
                "battery_pct": battery,
                "advertised_name": sighting.name if sighting else None,
                "rssi": sighting.rssi if sighting else None,
                "tx_power_dbm": sighting.tx_power if sighting else None,
                "advertised_state": [f.name for f in fb.BandFlags
                                     if sighting and sighting.beacon
                                     and f in sighting.beacon.flags],
            },
        )

    def _needs_management(self, what: str) -> BandUnreachableError:
        return BandUnreachableError(
            f"ble:{self.address}: {what} travels over the band management protocol, which this "
            "connection does not carry (standard BLE gives identity, battery and presence only)",
            UnreachableReason.UNSUPPORTED)

    async def management(self, what: str = "band management") -> bm.BleManagement:
        """The band management protocol on this connection, with its secure session open."""
        client = self._client()
        if self._management is None:
            if not bm.offers_management(client):
                raise self._needs_management(what)
            trusted_ca = bm.resolve_trusted_ca(self.trusted_ca)
            if trusted_ca is None:
                raise bm.no_trusted_ca(self.address)
            self._management = bm.BleManagement(client, trusted_ca, timeout=self.timeout)
        await self._management.session()
        return self._management

    async def status(self) -> BandStatus:
        return await (await self.management("the band's status")).client.status()

    async def recent_events(self, last: int = 20) -> list[BandEvent]:
        return await (await self.management("the band's event log")).recent_events(last)

    async def events(self) -> AsyncIterator[BandEvent]:
        async for event in (await self.management("the band's live events")).events():
            yield event

    @property
    def features(self) -> frozenset[Feature]:
        found: set[Feature] = set()
        client = self.client
        if client is not None and bm.offers_management(client):
            found |= {Feature.STATUS, Feature.EVENTS, Feature.ENROLLMENT}
        if self.fido2 is not None or (
                client is not None and client.services.get_service(fb.FIDO_SERVICE) is not None):
            found.add(Feature.FIDO2)
        return frozenset(found)

    async def _session(self, what: str) -> ManagementClient:
        try:
            return (await self.management(what)).client
        except BandUnreachableError as exc:
            if exc.reason is UnreachableReason.UNSUPPORTED:
                raise FeatureUnavailableError(str(exc)) from None
            raise

    async def event_mark(self) -> int:
        client = await self._session("the band's event log")
        return (await client.event_log(_PAST_THE_END, limit=1)).end

    async def events_since(self, mark: int) -> tuple[list[BandEvent], int]:
        client = await self._session("the band's event log")
        logged = await client.full_event_log(mark)
        end = max([mark, *(item.index + 1 for item in logged)])
        return [item.event for item in logged], end

    async def enter_setup_code(self, code: str) -> None:
        await (await self._session("enrollment")).enter_setup_code(code)

    async def start_capture(self) -> int:
        return await (await self._session("enrollment")).start_capture()

    async def set_label(self, label: str | None) -> str | None:
        return await (await self._session("enrollment")).set_label(label)

    async def add_corporate_authenticator(self) -> None:
        await (await self._session("enrollment")).add_corporate_authenticator()

    async def apply_policy(self, policy: PolicySettings) -> None:
        client = await self._session("enrollment")
        await client.set_policy(policy)
        await client.finish_enrollment()

    async def update_policy(self, policy: PolicySettings) -> None:
        await (await self._session("a policy update")).update_policy(policy)

    async def corporate_login(self, accepted: bool = True) -> AuthState:
        return await (await self._session("the corporate login")).corporate_login(accepted)

    async def fido2_device(self) -> CtapDevice:
        if self.fido2 is not None:
            from nymi_device.fido import open_ctap_device

            return await asyncio.to_thread(open_ctap_device, self.fido2, **self.fido2_options)
        client = self._client()
        if client.services.get_service(fb.FIDO_SERVICE) is None:
            raise FeatureUnavailableError(
                f"ble:{self.address} carries no FIDO service: its authenticator is reached over "
                "NFC (give the reader, e.g. fido2='pcsc:')")
        return await CtapBleDevice.open(client, timeout=self.timeout)


# --- FIDO over BLE ----------------------------------------------------------------------------

class _Exchange:
    """One request in flight: response fragments are fed in as notifications arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, expect: fb.Command, timeout: float,
                 statuses: queue.SimpleQueue[int] | None) -> None:
        self.loop = loop
        self.expect = expect
        self.timeout = timeout
        self.statuses = statuses
        self.future: asyncio.Future[bytes] = loop.create_future()
        self.reassembler = fb.Reassembler(fb.RESPONSE_COMMANDS)
        self._timer = loop.call_later(timeout, self._expire)

    def feed(self, frame: bytes) -> None:
        if self.future.done():
            return
        self._timer.cancel()
        self._timer = self.loop.call_later(self.timeout, self._expire)
        result = self.reassembler.feed(frame)
        if result is None:
            return
        if isinstance(result, fb.Failure):
            self._fail(CtapError(result.code))
        elif result.cmd == fb.Command.KEEPALIVE:
            if self.statuses is not None and result.data:
                self.statuses.put(result.data[0])
        elif result.cmd == fb.Command.ERROR:
            self._fail(CtapError(result.data[0] if result.data else fb.BleErrorCode.OTHER))
        elif result.cmd == self.expect:
            self._timer.cancel()
            self.future.set_result(result.data)
        else:
            self._fail(CtapError(CtapError.ERR.INVALID_COMMAND))

    def _fail(self, error: BaseException) -> None:
        self._timer.cancel()
        if not self.future.done():
            self.future.set_exception(error)

    def _expire(self) -> None:
        self._fail(BandUnreachableError(f"no response or keepalive within {self.timeout:g} s",
                                        UnreachableReason.TRANSPORT_FAILED))


class CtapBleDevice(CtapDevice):
    """python-fido2's ``CtapDevice`` over FIDO BLE (CTAP 2.1 §11.4).

    Requests are cut into fragments of fidoControlPointLength and written to fidoControlPoint;
    responses arrive as fidoStatus notifications. KEEPALIVE statuses reach ``on_keepalive``
    (once per change, as python-fido2 expects); setting ``event`` writes CANCEL. ``call`` is
    synchronous and must not run on the event loop that owns the connection.
    """

    def __init__(self, client: BleakClient, loop: asyncio.AbstractEventLoop, *,
                 control_point: BleakGATTCharacteristic, max_fragment: int,
                 revisions: fb.ServiceRevision, timeout: float,
                 owner: LoopThread | None = None) -> None:
        self.client = client
        self.loop = loop
        self.timeout = timeout
        self.max_fragment = max_fragment
        self.revisions = revisions
        self._control_point = control_point
        self._owner = owner
        self._pending: _Exchange | None = None
        self._lock = threading.Lock()
        self._serial = asyncio.Lock()  # one request at a time on the link

    @classmethod
    async def open(cls, client: BleakClient, *, timeout: float = DEFAULT_TIMEOUT,
                   owner: LoopThread | None = None) -> CtapBleDevice:
        """Set up FIDO over an already connected client.

        The service's characteristics require encryption; an unpaired link is paired by the
        first read (BlueZ and our Bumble backend both pair when the band asks).
        """
        services = client.services
        control_point = services.get_characteristic(fb.FIDO_CONTROL_POINT)
        if services.get_service(fb.FIDO_SERVICE) is None or control_point is None:
            raise BandUnreachableError(f"ble:{client.address} offers no FIDO service",
                                       UnreachableReason.UNSUPPORTED)
        revisions = fb.ServiceRevision.U2F_1_1
        if services.get_characteristic(fb.FIDO_SERVICE_REVISION_BITFIELD) is not None:
            offered = (await client.read_gatt_char(fb.FIDO_SERVICE_REVISION_BITFIELD))[0]
            revisions = fb.ServiceRevision(offered & 0xE0)
            chosen = next((r for r in (fb.ServiceRevision.FIDO2, fb.ServiceRevision.U2F_1_2,
                                       fb.ServiceRevision.U2F_1_1) if r & revisions), None)
            if chosen is not None:
                await client.write_gatt_char(fb.FIDO_SERVICE_REVISION_BITFIELD,
                                             bytes([chosen]), response=True)
        raw = await client.read_gatt_char(fb.FIDO_CONTROL_POINT_LENGTH)
        max_fragment = max(fb.MIN_CONTROL_POINT_LENGTH,
                           min(fb.MAX_CONTROL_POINT_LENGTH, struct.unpack(">H", raw[:2])[0]))
        device = cls(client, asyncio.get_running_loop(), control_point=control_point,
                     max_fragment=max_fragment, revisions=revisions, timeout=timeout,
                     owner=owner)
        await client.start_notify(fb.FIDO_STATUS, device._on_status)
        return device

    @classmethod
    def connect(cls, address: str, *, hci: HciSpec | None = None,
                timeout: float = DEFAULT_TIMEOUT) -> CtapBleDevice:
        """Find, connect, pair and open, on a private event loop thread."""
        owner = LoopThread()

        async def opened() -> CtapBleDevice:
            sighting = await find_band(address, hci=hci, timeout=timeout)
            client = await connect_band(sighting, hci=hci, timeout=timeout, pair=True)
            try:
                return await cls.open(client, timeout=timeout, owner=owner)
            except BaseException:
                await client.disconnect()
                raise

        try:
            return owner.run(opened())
        except BaseException:
            owner.stop()
            raise

    @classmethod
    def list_devices(cls) -> Iterator[CtapBleDevice]:
        """Bands advertising the FIDO service on ``$NYMI_BLE_HCI`` (or the OS stack)."""
        owner = LoopThread()
        try:
            sightings = owner.run(scan_bands(3.0))
        finally:
            owner.stop()
        for sighting in sightings:
            if sighting.fido_ble:
                yield cls.connect(sighting.address)

    @property
    def capabilities(self) -> int:
        flags = CAPABILITY(0)
        if self.revisions & fb.ServiceRevision.FIDO2:
            flags |= CAPABILITY.CBOR
        if not self.revisions & (fb.ServiceRevision.U2F_1_1 | fb.ServiceRevision.U2F_1_2):
            flags |= CAPABILITY.NMSG
        return int(flags)

    def _on_status(self, _sender: BleakGATTCharacteristic, data: bytearray) -> None:
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "RECV %s", data.hex())
        if self._pending is not None:
            self._pending.feed(bytes(data))

    async def _exchange(self, cmd: fb.Command, data: bytes,
                        statuses: queue.SimpleQueue[int] | None) -> bytes:
        async with self._serial:
            exchange = self._pending = _Exchange(self.loop, cmd, self.timeout, statuses)
            try:
                for frame in fb.fragment(cmd, data, self.max_fragment):
                    if logger.isEnabledFor(TRAFFIC):
                        logger.log(TRAFFIC, "SEND %s", frame.hex())
                    await self.client.write_gatt_char(self._control_point, frame, response=True)
                return await exchange.future
            finally:
                self._pending = None

    async def _cancel(self) -> None:
        with contextlib.suppress(BleakError):
            await self.client.write_gatt_char(
                self._control_point, bytes([fb.Command.CANCEL, 0, 0]), response=True)

    async def request(self, cmd: int, data: bytes = b"") -> bytes:
        """``call`` for asyncio code on the connection's own loop (no cancel, no keepalives)."""
        return await self._exchange(_ble_command(cmd), data, None)

    def call(self, cmd: int, data: bytes = b"", event: threading.Event | None = None,
             on_keepalive: Callable[[STATUS], None] | None = None) -> bytes:
        ble_cmd = _ble_command(cmd)
        if _running_on(self.loop):
            raise RuntimeError("CtapBleDevice.call blocks: call it from a worker thread")
        statuses: queue.SimpleQueue[int] | None = (
            queue.SimpleQueue() if on_keepalive is not None else None)
        with self._lock:
            future = asyncio.run_coroutine_threadsafe(
                self._exchange(ble_cmd, data, statuses), self.loop)
            if event is None and statuses is None:
                return future.result()
            return self._wait(future, event, statuses, on_keepalive)

    def _wait(self, future: concurrent.futures.Future[bytes], event: threading.Event | None,
              statuses: queue.SimpleQueue[int] | None,
              on_keepalive: Callable[[STATUS], None] | None) -> bytes:
        cancelled = False
        last: int | None = None
        while True:
            try:
                return future.result(timeout=0.02)
            except concurrent.futures.TimeoutError:
                pass
            while statuses is not None and on_keepalive is not None and not statuses.empty():
                status = statuses.get()
                if status != last and status in (1, 2):
                    last = status
                    on_keepalive(STATUS(status))
            if event is not None and event.is_set() and not cancelled:
                cancelled = True
                asyncio.run_coroutine_threadsafe(self._cancel(), self.loop)

    def close(self) -> None:
        owner, self._owner = self._owner, None
        if owner is None:
            return
        with contextlib.suppress(Exception):
            owner.run(self.client.disconnect())
        owner.stop()


def _ble_command(cmd: int) -> fb.Command:
    """python-fido2 speaks CTAPHID command codes to every device; BLE has MSG for both kinds."""
    if cmd in (CTAPHID.CBOR, CTAPHID.MSG):
        return fb.Command.MSG
    if cmd == CTAPHID.PING:
        return fb.Command.PING
    raise CtapError(CtapError.ERR.INVALID_COMMAND)


def _running_on(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def open_ble_ctap_device(address: str, *, hci: HciSpec | None = None,
                         timeout: float = DEFAULT_TIMEOUT, **unknown: Any) -> CtapDevice:
    """The ``ble`` opener of :func:`nymi_device.fido.open_ctap_device`."""
    if unknown:
        raise InvalidTargetError(f"unknown ble option(s): {', '.join(sorted(unknown))}")
    return CtapBleDevice.connect(address, hci=hci, timeout=timeout)
