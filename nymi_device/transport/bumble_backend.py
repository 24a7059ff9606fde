"""A bleak backend that runs a Bumble host on any Bumble HCI transport.

The same bleak code then reaches a real dongle (``usb:0``, ``serial:/dev/ttyUSB0``…), the
simulator's virtual radio in another process (``tcp-client:127.0.0.1:PORT``, see
:mod:`simulator.frontends.hci_bridge`) or, in-process, an already open Bumble ``Transport``::

    from bleak import BleakClient, BleakScanner
    from nymi_device.transport.bumble_backend import BleakClientBumble, BleakScannerBumble

    hci = "tcp-client:127.0.0.1:9001"
    device = await BleakScanner.find_device_by_name(
        "NymiRef-AAAH-00125", backend=BleakScannerBumble, hci=hci)
    async with BleakClient(device, backend=BleakClientBumble, hci=hci, pair=True) as client:
        print(await client.read_gatt_char("00002a25-0000-1000-8000-00805f9b34fb"))

``hci`` may be left out when ``$NYMI_BLE_HCI`` names the transport. Scanners and clients of one
event loop that name the same transport share one Bumble host (a dongle can be opened once); it
is closed when the last of them is done. Pairing is LE Secure Connections, Just Works, with
bonding; as BlueZ does, a read, write or subscription refused for insufficient encryption or
authentication pairs once and is retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar, TypeVar

from bleak.args import SizedBuffer
from bleak.assigned_numbers import CHARACTERISTIC_PROPERTIES, CharacteristicPropertyName
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.backends.client import BaseBleakClient, NotifyCallback
from bleak.backends.descriptor import BleakGATTDescriptor
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData, AdvertisementDataCallback, BaseBleakScanner
from bleak.backends.service import BleakGATTService, BleakGATTServiceCollection
from bleak.exc import BleakDeviceNotFoundError, BleakError, BleakGATTProtocolError
from bleak.uuids import normalize_uuid_str
from bumble import att, core, hci
from bumble.device import Advertisement, Connection, Device, Peer
from bumble.gatt_client import CharacteristicProxy, DescriptorProxy
from bumble.host import Host
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport import open_transport
from bumble.transport.common import Transport

__all__ = [
    "HCI_ENV",
    "BleakClientBumble",
    "BleakScannerBumble",
    "BumbleDeviceDetails",
    "BumbleHost",
    "HciSpec",
    "HciTransportError",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the default HCI transport moniker.
HCI_ENV = "NYMI_BLE_HCI"
#: Requested ATT_MTU (what BlueZ asks for).
REQUESTED_MTU = 517

HciSpec = str | Transport
T = TypeVar("T")

_AD = core.AdvertisingData.Type
_SECURITY_ERRORS = frozenset({att.ErrorCode.INSUFFICIENT_ENCRYPTION,
                              att.ErrorCode.INSUFFICIENT_AUTHENTICATION})


class HciTransportError(BleakError):
    """The HCI transport could not be opened, or no controller answered on it."""


def _resolve(hci_spec: HciSpec | None) -> HciSpec:
    if hci_spec is None:
        hci_spec = os.environ.get(HCI_ENV) or None
    if hci_spec is None:
        raise HciTransportError(f"no HCI transport: pass hci='tcp-client:HOST:PORT' (or "
                                f"'usb:0', ...) or set ${HCI_ENV}")
    return hci_spec


def _uuid(uuid: core.UUID) -> str:
    return normalize_uuid_str(uuid.to_hex_str("-"))


def host_pairing_config(_connection: Connection | None = None) -> PairingConfig:
    """LE Secure Connections, Just Works, bonding."""
    return PairingConfig(
        sc=True, mitm=False, bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
    )


@dataclass(frozen=True)
class BumbleDeviceDetails:
    """``BLEDevice.details`` for this backend: the address with its type, the raw report."""

    address: hci.Address
    advertisement: Advertisement


class BumbleHost:
    """One Bumble host stack on one HCI transport, shared within one event loop."""

    _hosts: ClassVar[dict[tuple[asyncio.AbstractEventLoop, object], BumbleHost]] = {}

    def __init__(self, hci_spec: HciSpec, key: tuple[asyncio.AbstractEventLoop, object]) -> None:
        self.hci_spec = hci_spec
        self._key = key
        self._users = 0
        self._transport: Transport | None = None
        self._owns_transport = isinstance(hci_spec, str)
        self.device: Device | None = None
        self.lost = False
        self._closing = False
        self.seen: dict[str, BumbleDeviceDetails] = {}
        self._listeners: list[Callable[[Advertisement], None]] = []
        self._scanners = 0
        self._scan_lock = asyncio.Lock()
        self._ready: asyncio.Task[None] = asyncio.get_running_loop().create_task(self._open())

    @classmethod
    async def acquire(cls, hci_spec: HciSpec | None) -> BumbleHost:
        """The host for ``hci_spec`` in this event loop, opened on first use."""
        spec = _resolve(hci_spec)
        loop = asyncio.get_running_loop()
        key = (loop, spec if isinstance(spec, str) else id(spec))
        host = cls._hosts.get(key)
        if host is None or host.lost:
            host = cls._hosts[key] = cls(spec, key)
        host._users += 1
        try:
            await asyncio.shield(host._ready)
        except BaseException:
            await host.release()
            raise
        return host

    async def release(self) -> None:
        self._users -= 1
        if self._users > 0:
            return
        if self._hosts.get(self._key) is self:
            del self._hosts[self._key]
        await self._close()

    @property
    def name(self) -> str:
        spec = self.hci_spec
        return spec if isinstance(spec, str) else f"in-process {type(spec).__name__}"

    async def _open(self) -> None:
        spec = self.hci_spec
        try:
            transport = await open_transport(spec) if isinstance(spec, str) else spec
        except Exception as exc:
            raise HciTransportError(f"cannot open HCI transport {spec!r}: {exc}") from exc
        self._transport = transport
        device = Device(name="nymi-host", address=hci.Address.generate_static_address(),
                        host=Host(transport.source, transport.sink))
        device.pairing_config_factory = host_pairing_config
        device.on(Device.EVENT_ADVERTISEMENT, self._on_advertisement)
        terminated = getattr(transport.source, "terminated", None)
        if isinstance(terminated, asyncio.Future):
            terminated.add_done_callback(lambda _f: self._on_lost())
        try:
            await device.power_on()
        except Exception as exc:
            await self._close_transport()
            raise HciTransportError(f"the controller on {self.name} did not start: {exc}") from exc
        self.device = device

    def _on_lost(self) -> None:
        # Our own close ends the transport too: only an unexpected loss is worth a warning.
        log = logger.debug if self._closing else logger.warning
        log("HCI transport %s lost", self.name)
        self.lost = True
        if self.device is not None:
            for connection in list(self.device.connections.values()):
                connection.emit(Connection.EVENT_DISCONNECTION,
                                hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR)

    async def _close(self) -> None:
        self._ready.cancel()
        device, self.device = self.device, None
        if device is not None and not self.lost:
            with contextlib.suppress(Exception):
                for connection in list(device.connections.values()):
                    await connection.disconnect()
                await device.power_off()
        await self._close_transport()

    async def _close_transport(self) -> None:
        self._closing = True
        transport, self._transport = self._transport, None
        if transport is None:
            return
        if self._owns_transport:
            with contextlib.suppress(Exception):
                await transport.close()
        elif hasattr(transport.source, "sink"):
            transport.source.sink = None  # unbind this host from a borrowed transport

    def require_device(self) -> Device:
        if self.device is None or self.lost:
            raise BleakError(f"the Bluetooth host on {self.name} is not running")
        return self.device

    # -- scanning ------------------------------------------------------------------------------

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        address = advertisement.address.to_string(with_type_qualifier=False)
        self.seen[address] = BumbleDeviceDetails(advertisement.address, advertisement)
        for listener in list(self._listeners):
            listener(advertisement)

    async def start_scan(self, listener: Callable[[Advertisement], None], *, active: bool) -> None:
        device = self.require_device()
        async with self._scan_lock:
            self._listeners.append(listener)
            self._scanners += 1
            if self._scanners == 1:
                await device.start_scanning(active=active, filter_duplicates=False)

    async def stop_scan(self, listener: Callable[[Advertisement], None]) -> None:
        async with self._scan_lock:
            if listener not in self._listeners:
                return
            self._listeners.remove(listener)
            self._scanners -= 1
            if self._scanners == 0 and self.device is not None and not self.lost:
                with contextlib.suppress(Exception):
                    await self.device.stop_scanning()

    async def find(self, address: str, timeout: float) -> BumbleDeviceDetails:
        """The advertiser ``address`` (as last seen, or scanned for up to ``timeout`` seconds)."""
        key = address.upper()
        if key in self.seen:
            return self.seen[key]
        found: asyncio.Future[BumbleDeviceDetails] = asyncio.get_running_loop().create_future()

        def listener(advertisement: Advertisement) -> None:
            if advertisement.address.to_string(with_type_qualifier=False) == key and (
                    not found.done()):
                found.set_result(self.seen[key])

        await self.start_scan(listener, active=True)
        try:
            return await asyncio.wait_for(found, timeout)
        except TimeoutError:
            raise BleakDeviceNotFoundError(address, f"no advertisement from {address} on "
                                                    f"{self.name} within {timeout:g} s") from None
        finally:
            await self.stop_scan(listener)


def advertisement_data(advertisement: Advertisement) -> AdvertisementData:
    """bleak's view of one Bumble advertisement."""
    name: str | None = None
    manufacturer: dict[int, bytes] = {}
    service_data: dict[str, bytes] = {}
    uuids: list[str] = []
    tx_power: int | None = None
    for ad_type, value in advertisement.data.ad_structures:
        if ad_type in (_AD.COMPLETE_LOCAL_NAME, _AD.SHORTENED_LOCAL_NAME) and (
                name is None or ad_type == _AD.COMPLETE_LOCAL_NAME):
            name = value.decode("utf-8", errors="replace")
        elif ad_type == _AD.MANUFACTURER_SPECIFIC_DATA and len(value) >= 2:
            manufacturer[int.from_bytes(value[:2], "little")] = bytes(value[2:])
        elif ad_type == _AD.TX_POWER_LEVEL and len(value) == 1:
            tx_power = int.from_bytes(value, "little", signed=True)
        elif ad_type in _UUID_LISTS:
            size = _UUID_LISTS[ad_type]
            uuids += [_uuid(core.UUID.from_bytes(value[i:i + size]))
                      for i in range(0, len(value) - size + 1, size)]
        elif ad_type in _SERVICE_DATA and len(value) >= _SERVICE_DATA[ad_type]:
            size = _SERVICE_DATA[ad_type]
            service_data[_uuid(core.UUID.from_bytes(value[:size]))] = bytes(value[size:])
    return AdvertisementData(
        local_name=name, manufacturer_data=manufacturer, service_data=service_data,
        service_uuids=uuids, tx_power=tx_power, rssi=int(advertisement.rssi),
        platform_data=(advertisement,),
    )


_UUID_LISTS = {
    _AD.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _AD.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS: 2,
    _AD.INCOMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _AD.COMPLETE_LIST_OF_32_BIT_SERVICE_CLASS_UUIDS: 4,
    _AD.INCOMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
    _AD.COMPLETE_LIST_OF_128_BIT_SERVICE_CLASS_UUIDS: 16,
}
_SERVICE_DATA = {
    _AD.SERVICE_DATA_16_BIT_UUID: 2,
    _AD.SERVICE_DATA_32_BIT_UUID: 4,
    _AD.SERVICE_DATA_128_BIT_UUID: 16,
}


class BleakScannerBumble(BaseBleakScanner):
    """``BleakScanner(backend=BleakScannerBumble, hci=MONIKER)``."""

    def __init__(
        self,
        detection_callback: AdvertisementDataCallback | None,
        service_uuids: list[str] | None,
        scanning_mode: str = "active",
        *,
        hci: HciSpec | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(detection_callback, service_uuids)
        self._hci = hci
        self._active = scanning_mode != "passive"
        self._host: BumbleHost | None = None

    async def start(self) -> None:
        if self._host is not None:
            return
        self.seen_devices = {}
        host = await BumbleHost.acquire(self._hci)
        try:
            await host.start_scan(self._on_advertisement, active=self._active)
        except BaseException:
            await host.release()
            raise
        self._host = host

    async def stop(self) -> None:
        host, self._host = self._host, None
        if host is not None:
            await host.stop_scan(self._on_advertisement)
            await host.release()

    def _on_advertisement(self, advertisement: Advertisement) -> None:
        data = advertisement_data(advertisement)
        if not self.is_allowed_uuid(data.service_uuids):
            return
        address = advertisement.address.to_string(with_type_qualifier=False)
        details = BumbleDeviceDetails(advertisement.address, advertisement)
        device = self.create_or_update_device(address, address, data.local_name, details, data)
        self.call_detection_callbacks(device, data)


class BleakClientBumble(BaseBleakClient):
    """``BleakClient(address_or_device, backend=BleakClientBumble, hci=MONIKER)``."""

    def __init__(
        self,
        address_or_ble_device: BLEDevice | str,
        *,
        disconnected_callback: Callable[[], None] | None = None,
        timeout: float = 10.0,
        services: set[str] | None = None,
        hci: HciSpec | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(address_or_ble_device, disconnected_callback=disconnected_callback,
                         timeout=timeout)
        self._hci = hci
        self._service_filter = services
        details = getattr(address_or_ble_device, "details", None)
        self._details = details if isinstance(details, BumbleDeviceDetails) else None
        self._host: BumbleHost | None = None
        self._connection: Connection | None = None
        self._peer: Peer | None = None
        self._closing = False

    # -- connectivity ------------------------------------------------------------------------

    @property
    def name(self) -> str:
        details = self._details or (self._host.seen.get(self.address.upper())
                                    if self._host else None)
        if details is None:
            return self.address
        name = advertisement_data(details.advertisement).local_name
        return name or self.address

    @property
    def mtu_size(self) -> int:
        return self._connection.att_mtu if self._connection is not None else att.ATT_DEFAULT_MTU

    @property
    def is_connected(self) -> bool:
        return self._connection is not None

    async def connect(self, pair: bool, **kwargs: Any) -> None:
        if self._connection is not None:
            return
        host = await BumbleHost.acquire(self._hci)
        try:
            device = host.require_device()
            details = self._details or await host.find(self.address, self._timeout)
            try:
                connection = await device.connect(details.address, timeout=self._timeout)
            except core.TimeoutError:
                raise TimeoutError(f"connecting to {self.address} timed out") from None
            except core.ConnectionError as exc:
                raise BleakError(f"connecting to {self.address} failed: {exc}") from exc
            self._host, self._connection, self._peer = host, connection, Peer(connection)
            self._closing = False
            connection.on(Connection.EVENT_DISCONNECTION, self._on_disconnection)
            await self._peer.request_mtu(REQUESTED_MTU)
            if pair:
                await self.pair()
            self.services = await self._discover()
        except BaseException:
            if self._connection is not None:
                await self.disconnect()
            else:
                await host.release()
            raise

    async def disconnect(self) -> None:
        connection, host = self._connection, self._host
        self._closing = True
        self._connection = self._peer = None
        self._host = None
        if connection is not None and host is not None and not host.lost:
            with contextlib.suppress(Exception):
                await connection.disconnect()
        if host is not None:
            await host.release()

    def _on_disconnection(self, reason: int) -> None:
        if self._closing:
            return
        logger.info("%s disconnected (reason 0x%02x)", self.address, reason)
        host = self._host
        self._connection = self._peer = None
        self._host = None
        if host is not None:
            asyncio.get_running_loop().create_task(host.release())
        if self._disconnected_callback is not None:
            asyncio.get_running_loop().call_soon(self._disconnected_callback)

    async def pair(self, *args: Any, **kwargs: Any) -> None:
        """Pair (LE Secure Connections, Just Works) and encrypt the link."""
        connection = self._require_connection()
        if connection.is_encrypted:
            return
        try:
            await connection.pair()
        except core.ProtocolError as exc:
            raise BleakError(f"pairing with {self.address} failed: {exc}") from exc
        if not connection.is_encrypted:
            await connection.encrypt()

    async def unpair(self) -> None:
        """Forget the bond (keys) with the peripheral, and disconnect as BlueZ does."""
        host = self._host
        address = self._details.address if self._details else None
        if host is not None and host.device is not None and host.device.keystore is not None:
            if address is None and self._connection is not None:
                address = self._connection.peer_address
            if address is not None:
                with contextlib.suppress(KeyError):
                    await host.device.keystore.delete(str(address))
        await self.disconnect()

    def _require_connection(self) -> Connection:
        if self._connection is None:
            raise BleakError(f"not connected to {self.address}")
        return self._connection

    def _require_peer(self) -> Peer:
        if self._peer is None:
            raise BleakError(f"not connected to {self.address}")
        return self._peer

    # -- discovery -----------------------------------------------------------------------------

    async def _discover(self) -> BleakGATTServiceCollection:
        peer = self._require_peer()
        collection = BleakGATTServiceCollection()
        uuids = [core.UUID(u) for u in self._service_filter or ()]
        connection = self._require_connection()
        for service in await peer.discover_services(uuids):
            bleak_service = BleakGATTService(service, service.handle, _uuid(service.uuid))
            collection.add_service(bleak_service)
            for characteristic in await service.discover_characteristics():
                properties: list[CharacteristicPropertyName] = [
                    name for bit, name in CHARACTERISTIC_PROPERTIES.items()
                    if int(characteristic.properties) & bit
                ]
                bleak_characteristic = BleakGATTCharacteristic(
                    characteristic, characteristic.handle, _uuid(characteristic.uuid),
                    properties, lambda: max(20, connection.att_mtu - 3), bleak_service)
                collection.add_characteristic(bleak_characteristic)
                for descriptor in await characteristic.discover_descriptors():
                    collection.add_descriptor(BleakGATTDescriptor(
                        descriptor, descriptor.handle, _uuid(descriptor.type),
                        bleak_characteristic))
        return collection

    # -- I/O -----------------------------------------------------------------------------------

    async def _secured(self, operation: Callable[[], Awaitable[T]]) -> T:
        """Run a GATT operation; pair and retry once if the link is not secure enough."""
        try:
            return await operation()
        except att.ATT_Error as exc:
            if exc.error_code not in _SECURITY_ERRORS or self._require_connection().is_encrypted:
                raise BleakGATTProtocolError(int(exc.error_code)) from exc
        await self.pair()
        try:
            return await operation()
        except att.ATT_Error as exc:
            raise BleakGATTProtocolError(int(exc.error_code)) from exc

    async def read_gatt_char(
        self, characteristic: BleakGATTCharacteristic, *, use_cached: bool = False,
        **kwargs: Any,
    ) -> bytearray:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        return bytearray(await self._secured(proxy.read_value))

    async def read_gatt_descriptor(
        self, descriptor: BleakGATTDescriptor, *, use_cached: bool = False, **kwargs: Any,
    ) -> bytearray:
        proxy: DescriptorProxy = descriptor.obj
        return bytearray(await self._secured(proxy.read_value))

    async def write_gatt_char(
        self, characteristic: BleakGATTCharacteristic, data: SizedBuffer, response: bool
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        value = bytes(data)
        await self._secured(lambda: proxy.write_value(value, with_response=response))

    async def write_gatt_descriptor(self, descriptor: BleakGATTDescriptor,
                                    data: SizedBuffer) -> None:
        proxy: DescriptorProxy = descriptor.obj
        value = bytes(data)
        await self._secured(lambda: proxy.write_value(value, with_response=True))

    async def start_notify(
        self, characteristic: BleakGATTCharacteristic, callback: NotifyCallback, **kwargs: Any,
    ) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        self._require_connection()

        def on_value(value: bytes) -> None:
            callback(bytearray(value))

        await self._secured(lambda: proxy.subscribe(on_value, prefer_notify=True))

    async def stop_notify(self, characteristic: BleakGATTCharacteristic) -> None:
        proxy: CharacteristicProxy[bytes] = characteristic.obj
        self._require_connection()
        await self._secured(lambda: proxy.unsubscribe(force=True))
