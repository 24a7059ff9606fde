"""The band's radio: a Bumble peripheral on a :class:`~.ble_radio.VirtualRadio`.

Each simulated band is a Bumble ``Device`` with its own virtual controller on the radio's
``LocalLink``. It advertises, serves its GATT database (:mod:`.ble_gatt`) and pairs with LE
Secure Connections (Just Works: the band has no keyboard and no yes/no input)::

    radio = VirtualRadio()
    band_radio = BandRadio(radio, live.band, authenticator=live.authenticator, distance_m=0.5)
    await band_radio.start()
    band_radio.set_distance(0.05)          # the wearer taps the reader
    ...
    await band_radio.close()

**Advertisement** (extended advertising, connectable, not scannable, every
``advertising_interval_ms``): Flags (LE General Discoverable, BR/EDR not supported), the complete
local name ``<fixture radio.advertised_name_prefix>-<serial>`` (e.g. ``NymiRef-AAAH-00125``), the
TX Power Level (fixture ``radio.tx_power_dbm``), the 16-bit service UUID 0xFFFD on fixtures with
FIDO over BLE, and manufacturer-specific data (:func:`~nymi_device.protocol.fido_ble.
encode_manufacturer_data`): company 0xFFFF, version 1, a state byte
(:class:`~nymi_device.protocol.fido_ble.BandFlags`: enrolled 0x01, authenticated 0x02, on wrist
0x04, on charger 0x08, locked out 0x10, FIDO over BLE 0x20) and the serial in ASCII. The
advertisement follows the band: a new state byte is on the air as soon as the band changes; a
band that is off (flat battery) stops advertising and drops its connection.

**RSSI**: hosts on the same radio receive the advertisement with the RSSI of the radio's
:class:`~.ble_radio.PathLossModel` at the band's distance (:meth:`BandRadio.set_distance`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
from collections.abc import Callable

from bumble import hci
from bumble.core import AdvertisingData
from bumble.device import (
    AdvertisingEventProperties,
    AdvertisingParameters,
    AdvertisingSet,
    Connection,
    Device,
)
from bumble.gatt import Characteristic
from bumble.pairing import PairingConfig, PairingDelegate
from bumble.transport.common import AsyncPipeSink

from nymi_device.protocol.fido_ble import (
    COMPANY_ID,
    BandFlags,
    encode_manufacturer_data,
)
from nymi_device.protocol.model import AuthState, EnrollmentState, PowerState
from simulator.band.band import EmulatedBand
from simulator.frontends.ble_gatt import (
    BleAuthenticator,
    FidoBleServer,
    ManagementService,
    battery_service,
    device_information_service,
    notify,
)
from simulator.frontends.ble_radio import (
    DeviceHost,
    PathLossModel,
    RadioController,
    VirtualRadio,
)

__all__ = [
    "DEFAULT_ADVERTISING_INTERVAL_MS",
    "BandRadio",
    "PathLossModel",
    "VirtualRadio",
    "pairing_config",
]

logger = logging.getLogger(__name__)

DEFAULT_ADVERTISING_INTERVAL_MS = 100.0
#: The GATT server's largest ATT_MTU: 512 bytes of attribute value (the Core limit) + 3.
#: Hosts asking for 517 (BlueZ, Bumble) settle at 512, so FIDO fragments carry 509 bytes.
GATT_MAX_MTU = 512

_AD_FLAGS = AdvertisingData.Type.FLAGS
_AD_NAME = AdvertisingData.Type.COMPLETE_LOCAL_NAME
_AD_TX_POWER = AdvertisingData.Type.TX_POWER_LEVEL
_AD_UUIDS_16 = AdvertisingData.Type.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS
_AD_MANUFACTURER = AdvertisingData.Type.MANUFACTURER_SPECIFIC_DATA
_LE_GENERAL_NO_BREDR = 0x06


def pairing_config(_connection: Connection | None = None) -> PairingConfig:
    """LE Secure Connections, Just Works, bonding: what a band without input or display offers."""
    return PairingConfig(
        sc=True, mitm=False, bonding=True,
        delegate=PairingDelegate(io_capability=PairingDelegate.IoCapability.NO_OUTPUT_NO_INPUT),
    )


class BandRadio:
    """One band on the air: advertising, GATT server, pairing.

    :param radio: the shared :class:`VirtualRadio`.
    :param band: the band.
    :param authenticator: the band's CTAP authenticator; FIDO over BLE is served when the
        fixture has ``radio.fido_ble`` and this is given.
    :param management: the band management service (UUIDs and per-connection handler).
    :param distance_m: initial distance from the hosts on the radio.
    :param advertising_interval_ms: advertising interval (Bumble's virtual controller honours
        it down to 10 ms).
    :param keepalive_interval: seconds between FIDO KEEPALIVE notifications.
    :param battery_poll_s: how often the battery level is re-read (band time runs continuously;
        a notification goes out when the whole-percent value changes).
    """

    def __init__(
        self,
        radio: VirtualRadio,
        band: EmulatedBand,
        *,
        authenticator: BleAuthenticator | None = None,
        management: ManagementService | None = None,
        distance_m: float = 1.0,
        advertising_interval_ms: float = DEFAULT_ADVERTISING_INTERVAL_MS,
        keepalive_interval: float = 0.1,
        battery_poll_s: float = 1.0,
    ) -> None:
        self.radio = radio
        self.band = band
        self.authenticator = authenticator
        self.management = management
        self.advertising_interval_ms = advertising_interval_ms
        self.keepalive_interval = keepalive_interval
        self.battery_poll_s = battery_poll_s
        self.hci_address = hci.Address(band.identity.ble_address)
        radio_spec = band.fixture.radio
        self.local_name = f"{radio_spec.advertised_name_prefix}-{band.identity.serial}"
        self.tx_power_dbm = radio_spec.tx_power_dbm
        self.fido_ble = radio_spec.fido_ble and authenticator is not None
        if radio_spec.fido_ble and authenticator is None:
            logger.warning("%s: fixture offers FIDO over BLE but no authenticator was given",
                           band.identity.serial)
        self._initial_distance = distance_m
        self.controller: RadioController | None = None
        self.device: Device | None = None
        self.fido: FidoBleServer | None = None
        self._battery: Characteristic[bytes] | None = None
        self._on_disconnect: list[Callable[[Connection], None]] = []
        self._advertising: AdvertisingSet | None = None
        self._sent_flags: BandFlags | None = None
        self._sent_level: int | None = None
        self._powered = True
        self._loop: asyncio.AbstractEventLoop | None = None
        self._wake = asyncio.Event()
        self._closing = False
        self._updater_task: asyncio.Task[None] | None = None
        self._battery_timer: asyncio.TimerHandle | None = None  # a timer, not a task per band
        self._unsubscribe: Callable[[], None] | None = None

    # -- public API ------------------------------------------------------------------------

    @property
    def address(self) -> str:
        """The band's random static address, as hosts see it (``C4:...``)."""
        return self.hci_address.to_string(with_type_qualifier=False)

    @property
    def serial(self) -> str:
        return self.band.identity.serial

    @property
    def distance_m(self) -> float:
        distance = self.radio.distance(self.hci_address)
        return self._initial_distance if distance is None else distance

    @property
    def rssi(self) -> int:
        """The RSSI a host on the radio receives from this band now."""
        return self.radio.path_loss.rssi(self.tx_power_dbm, self.distance_m)

    def set_distance(self, meters: float) -> None:
        """Move the band: its next advertisement arrives with the RSSI of ``meters``."""
        if self.radio.is_placed(self.hci_address):
            self.radio.set_distance(self.hci_address, meters)
        else:
            self._initial_distance = meters

    @property
    def connections(self) -> list[Connection]:
        return [] if self.device is None else list(self.device.connections.values())

    def flags(self) -> BandFlags:
        band = self.band
        flags = BandFlags(0)
        if band.enrollment == EnrollmentState.ENROLLED:
            flags |= BandFlags.ENROLLED
        if band.is_authenticated:
            flags |= BandFlags.AUTHENTICATED
        if band.on_wrist:
            flags |= BandFlags.ON_WRIST
        if band.on_charger:
            flags |= BandFlags.ON_CHARGER
        if band.auth == AuthState.LOCKED_OUT:
            flags |= BandFlags.LOCKED_OUT
        if self.fido_ble:
            flags |= BandFlags.FIDO_BLE
        return flags

    def advertising_data(self, flags: BandFlags | None = None) -> bytes:
        structures: list[tuple[int, bytes]] = [
            (_AD_FLAGS, bytes([_LE_GENERAL_NO_BREDR])),
            (_AD_NAME, self.local_name.encode("utf-8")),
            (_AD_TX_POWER, struct.pack("b", self.tx_power_dbm)),
        ]
        if self.fido_ble:
            structures.append((_AD_UUIDS_16, struct.pack("<H", 0xFFFD)))
        payload = encode_manufacturer_data(self.serial, self.flags() if flags is None else flags)
        structures.append((_AD_MANUFACTURER, struct.pack("<H", COMPANY_ID) + payload))
        return bytes(AdvertisingData(structures))

    def battery_level(self) -> int:
        with self.band.lock:
            return max(0, min(100, round(self.band.battery_pct)))

    async def start(self) -> None:
        """Power the band's radio on: GATT database, then advertising."""
        if self.device is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._closing = False
        self._advertising = None
        self.radio.place(self.hci_address, tx_power_dbm=self.tx_power_dbm,
                         distance_m=self._initial_distance)
        controller = self.controller = self.radio.new_controller(
            f"band-{self.serial}", peripheral=True)
        device = self.device = Device(
            name=self.local_name, address=self.hci_address,
            host=DeviceHost(controller, AsyncPipeSink(controller)),
        )
        device.irk = secrets.token_bytes(16)
        device.pairing_config_factory = pairing_config
        device.gatt_server.max_mtu = GATT_MAX_MTU
        self._build_gatt(device)
        device.on(Device.EVENT_CONNECTION, self._on_connection)
        await device.power_on()
        with self.band.lock:
            self._powered = self.band.power != PowerState.OFF
            self._sent_flags = self.flags()
            self._sent_level = self.battery_level()
        if self._powered:
            await self._start_advertising()
        self._unsubscribe = self.band.subscribe(lambda _event: self._poke())
        self._updater_task = asyncio.create_task(self._updater(), name=f"ble-{self.serial}")
        self._battery_timer = self._loop.call_later(self.battery_poll_s, self._battery_tick)
        logger.info("%s on the air as %s (%s)", self.serial, self.address, self.local_name)

    async def close(self) -> None:
        """Switch the radio off: links dropped, advertising stopped, controller off the link."""
        unsubscribe = self._unsubscribe
        self._unsubscribe = None
        if unsubscribe is not None:
            with contextlib.suppress(ValueError):
                unsubscribe()
        # The updater is asked to stop rather than cancelled: a cancellation that lands while
        # Bumble's host waits for a command response can be lost (asyncio.wait_for on 3.11).
        self._closing = True
        self._wake.set()
        if self._battery_timer is not None:
            self._battery_timer.cancel()
            self._battery_timer = None
        updater, self._updater_task = self._updater_task, None
        if updater is not None:
            _done, pending = await asyncio.wait([updater], timeout=2.0)
            for task in pending:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await updater
        if self.controller is not None:
            self.controller.drop_links(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR)
            await asyncio.sleep(0)
            self.controller.detach()
        if self.fido is not None:
            self.fido.close()
        self.radio.remove(self.hci_address)
        self.device = None
        self.controller = None

    async def __aenter__(self) -> BandRadio:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- GATT and connections ------------------------------------------------------------------

    def _build_gatt(self, device: Device) -> None:
        device.add_service(device_information_service(self.band))
        service, self._battery = battery_service(self.battery_level)
        device.add_service(service)
        self._on_disconnect.clear()
        if self.management is not None:
            management, on_disconnection = self.management.build(device)
            device.add_service(management)
            self._on_disconnect.append(on_disconnection)
        if self.fido_ble and self.authenticator is not None:
            ctap = self.band.fixture.ctap
            self.fido = FidoBleServer(
                device, self.authenticator,
                u2f=ctap.u2f if ctap is not None else False,
                max_message=ctap.max_msg_size if ctap is not None else 7609,
                keepalive_interval=self.keepalive_interval,
                inline=ctap is not None and ctap.never_waits_for_wearer,
            )
            device.add_service(self.fido.service)
            self._on_disconnect.append(self.fido.on_disconnection)

    def _on_connection(self, connection: Connection) -> None:
        logger.info("%s: connected to %s", self.serial, connection.peer_address)

        def on_disconnection(reason: int) -> None:
            logger.info("%s: disconnected from %s (reason 0x%02x)", self.serial,
                        connection.peer_address, reason)
            for callback in self._on_disconnect:
                callback(connection)
            self._poke()

        connection.on(Connection.EVENT_DISCONNECTION, on_disconnection)

    # -- advertising and battery follow the band -----------------------------------------------

    def _poke(self) -> None:
        """Band state may have changed (called from any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            self._wake.set()
        else:
            loop.call_soon_threadsafe(self._wake.set)

    def _battery_tick(self) -> None:
        """Every ``battery_poll_s``: wake the updater to re-read the battery level."""
        if self._closing or self._loop is None:
            return
        self._wake.set()
        self._battery_timer = self._loop.call_later(self.battery_poll_s, self._battery_tick)

    async def _updater(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self._closing:
                return
            try:
                await self._refresh()
            except Exception:  # the radio keeps running whatever one update did
                logger.exception("%s: updating the advertisement failed", self.serial)

    async def _refresh(self) -> None:
        device = self.device
        if device is None:
            return
        with self.band.lock:
            flags = self.flags()
            level = self.battery_level()
            powered = self.band.power != PowerState.OFF
        if level != self._sent_level and self._battery is not None:
            self._sent_level = level
            for connection in self.connections:
                notify(device, connection, self._battery, bytes([level]))
        if powered != self._powered:
            self._powered = powered
            if not powered:
                await self._stop_advertising()
                if self.controller is not None:
                    self.controller.drop_links(
                        hci.HCI_ErrorCode.REMOTE_DEVICE_TERMINATED_CONNECTION_DUE_TO_POWER_OFF_ERROR)
                return
        if flags != self._sent_flags and self._advertising is not None:
            self._sent_flags = flags
            await self._advertising.set_advertising_data(self.advertising_data(flags))
        if powered and not self.connections and (
                self._advertising is None or not self._advertising.enabled):
            await self._start_advertising()

    async def _start_advertising(self) -> None:
        device = self.device
        if device is None:
            return
        data = self.advertising_data(self._sent_flags)
        if self._advertising is None:
            self._advertising = await device.create_advertising_set(
                advertising_parameters=AdvertisingParameters(
                    advertising_event_properties=AdvertisingEventProperties(
                        is_connectable=True, is_scannable=False, is_legacy=False),
                    primary_advertising_interval_min=self.advertising_interval_ms,
                    primary_advertising_interval_max=self.advertising_interval_ms,
                    own_address_type=hci.OwnAddressType.RANDOM,
                    advertising_tx_power=self.tx_power_dbm,
                ),
                random_address=self.hci_address,
                advertising_data=data,
                auto_start=True,
            )
        elif not self._advertising.enabled:
            await self._advertising.set_advertising_data(data)
            await self._advertising.start()

    async def _stop_advertising(self) -> None:
        if self._advertising is not None and self._advertising.enabled:
            await self._advertising.stop()
