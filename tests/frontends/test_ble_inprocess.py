"""BLE in-process (the fast path): bands and host on one Bumble ``LocalLink``, no OS stack.

Two bands are on the air: a ``ctap21-reference`` band (FIDO over BLE) that the host connects to
once for the whole module, and a ``nymi-band-3.0`` band that keeps advertising for the scan and
distance tests and serves the band management protocol to short connections. The host is bleak
with our Bumble backend on an in-process HCI transport to a controller on the same radio.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import pytest_asyncio
from bleak import BleakClient, BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bumble import att, hci
from bumble.device import Device, Peer
from bumble.host import Host
from bumble.transport.common import Transport
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import STATUS, CtapError
from fido2.ctap1 import Ctap1
from fido2.ctap2.base import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from nymi_device.management_client import ManagementClient, load_trusted_ca
from nymi_device.protocol import fido_ble as fb
from nymi_device.protocol import management as mgmt
from nymi_device.protocol.model import Button, PowerState
from nymi_device.transport.ble import BandSighting, CtapBleDevice
from nymi_device.transport.bumble_backend import (
    BleakClientBumble,
    BleakScannerBumble,
    host_pairing_config,
)
from simulator.band.band import EmulatedBand
from simulator.band.management_ble import management_service_for
from simulator.fleet import Fleet
from simulator.frontends.ble import BandRadio, VirtualRadio
from simulator.serve import LiveBand, live_band, make_ready

pytestmark = pytest.mark.asyncio(loop_scope="module")

REF, PLAIN = "AAAH-00125", "AAAH-00126"
RP = PublicKeyCredentialRpEntity(id="example.com", name="Example RP")
USER = PublicKeyCredentialUserEntity(id=b"user-0001", name="ada", display_name="Ada")
ORIGIN = "https://example.com"
ROOT_CA = Path(__file__).resolve().parents[2] / "firmware_fixtures" / "attestation" / (
    "band-identity-root-ca.pem")


@dataclass
class World:
    radio: VirtualRadio
    live: LiveBand
    plain: EmulatedBand
    ref_radio: BandRadio
    plain_radio: BandRadio
    hci: Transport
    client: BleakClient
    ctap: CtapBleDevice


@contextlib.contextmanager
def _bands(tmp: Path) -> Iterator[tuple[LiveBand, EmulatedBand]]:
    fleet = Fleet(tmp / "fleet", durable=False)
    fleet.add_band("ctap21-reference", REF)
    fleet.add_band("nymi-band-3.0", PLAIN)
    with live_band(fleet, REF, auto_presence=True) as live, fleet.open_band(PLAIN) as plain:
        make_ready(live.band)
        plain.put_on()
        yield live, plain


@pytest_asyncio.fixture(loop_scope="module", scope="module")
async def world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[World]:
    with _bands(tmp_path_factory.mktemp("ble")) as (live, plain):
        radio = VirtualRadio()
        management = management_service_for(plain)
        ref_radio = BandRadio(radio, live.band, authenticator=live.authenticator,
                              distance_m=0.5, advertising_interval_ms=20)
        plain_radio = BandRadio(radio, plain, management=management, distance_m=1.0,
                                advertising_interval_ms=20)
        await ref_radio.start()
        await plain_radio.start()
        hci_transport = radio.host_transport()
        client = BleakClient(ref_radio.address, backend=BleakClientBumble, hci=hci_transport,
                             timeout=5)
        await client.connect()
        await client.pair()
        ctap = await CtapBleDevice.open(client, timeout=5)
        try:
            yield World(radio, live, plain, ref_radio, plain_radio, hci_transport, client, ctap)
        finally:
            await client.disconnect()
            await plain_radio.close()
            await ref_radio.close()


async def _sight(world: World, address: str, timeout: float = 5) -> BandSighting:
    found: asyncio.Future[BandSighting] = asyncio.get_running_loop().create_future()

    def detected(device: BLEDevice, data: AdvertisementData) -> None:
        if device.address == address and not found.done():
            found.set_result(BandSighting.from_advertisement(device, data))

    async with BleakScanner(detected, backend=BleakScannerBumble, hci=world.hci):
        return await asyncio.wait_for(found, timeout)


async def test_scan_sees_name_beacon_tx_power_and_rssi(world: World) -> None:
    sighting = await _sight(world, world.plain_radio.address)
    assert sighting.name == f"Nymi-{PLAIN}"
    assert sighting.beacon == fb.BandBeacon(PLAIN, fb.BandFlags.ON_WRIST)
    assert sighting.tx_power == 0 and not sighting.fido_ble
    assert sighting.rssi == world.radio.path_loss.rssi(0, 1.0) == -40


async def test_rssi_follows_distance(world: World) -> None:
    radio = world.plain_radio
    readings = {}
    for meters in (0.05, 3.0):
        radio.set_distance(meters)
        await asyncio.sleep(0.05)  # let advertisements from the old distance drain
        readings[meters] = (await _sight(world, radio.address)).rssi
    radio.set_distance(1.0)
    assert readings == {0.05: -14, 3.0: -50}  # -40 dBm at 1 m, -20 dB per decade


async def test_advertised_state_follows_the_band(world: World) -> None:
    with world.plain.lock:
        world.plain.take_off()
    await asyncio.sleep(0.05)
    sighting = await _sight(world, world.plain_radio.address)
    with world.plain.lock:
        world.plain.put_on()
    assert sighting.beacon is not None and not sighting.beacon.flags & fb.BandFlags.ON_WRIST


async def test_a_flat_band_goes_off_the_air_until_recharged(world: World) -> None:
    band, address = world.plain, world.plain_radio.address
    with band.lock:
        band.set_battery(1.0)
        band.settle()  # below critical: the band shuts down
    assert band.power == PowerState.OFF
    await asyncio.sleep(0.05)
    with pytest.raises(TimeoutError):
        await _sight(world, address, timeout=0.3)
    with band.lock:
        band.attach_charger()
        band.clock.advance(band.fixture.battery.critical_recharge_s + 1800)
    assert band.status().power == PowerState.AWAKE
    sighting = await _sight(world, address)
    with band.lock:
        band.detach_charger()
    assert sighting.beacon is not None and fb.BandFlags.ON_CHARGER in sighting.beacon.flags


async def test_connected_and_paired_with_secure_connections(world: World) -> None:
    assert world.client.is_connected and world.client.mtu_size == 512
    (connection,) = world.ref_radio.connections
    assert connection.is_encrypted
    keys = await world.ref_radio.device.keystore.get(str(connection.peer_address))  # type: ignore[union-attr]
    assert keys is not None and keys.ltk is not None  # bonded, LE Secure Connections: one LTK


async def test_device_information_and_battery(world: World) -> None:
    read = world.client.read_gatt_char
    assert await read(fb.MANUFACTURER_NAME) == b"nymi-band-stack"
    assert await read(fb.MODEL_NUMBER) == b"CTAP 2.1 Reference Band"
    assert await read(fb.SERIAL_NUMBER) == REF.encode()
    assert await read(fb.FIRMWARE_REVISION) == b"2.1.0"
    assert await read(fb.HARDWARE_REVISION) == b"ref-1"
    assert (await read(fb.BATTERY_LEVEL))[0] == world.ref_radio.battery_level()


async def test_battery_level_notifies(world: World) -> None:
    levels: asyncio.Queue[int] = asyncio.Queue()
    await world.client.start_notify(fb.BATTERY_LEVEL, lambda _c, data: levels.put_nowait(data[0]))
    try:
        with world.live.band.lock:
            world.live.band.set_battery(42)
        assert await asyncio.wait_for(levels.get(), 2) == 42
    finally:
        await world.client.stop_notify(fb.BATTERY_LEVEL)
        with world.live.band.lock:
            world.live.band.set_battery(90)


async def test_fido_get_info_and_u2f_version(world: World) -> None:
    info = await asyncio.to_thread(lambda: Ctap2(world.ctap).get_info())
    assert "FIDO_2_1" in info.versions and "ble" in info.transports
    assert world.ctap.max_fragment == 509
    assert await asyncio.to_thread(lambda: Ctap1(world.ctap).get_version()) == "U2F_V2"


async def test_fido2_register_and_assert_verified_by_the_rp(world: World) -> None:
    def ceremony() -> bool:
        rp = Fido2Server(RP)
        client = Fido2Client(world.ctap, DefaultClientDataCollector(ORIGIN))
        creation, state = rp.register_begin(
            USER, user_verification=UserVerificationRequirement.DISCOURAGED)
        auth_data = rp.register_complete(state, client.make_credential(creation.public_key))
        assert auth_data.credential_data is not None
        credential = auth_data.credential_data
        request, state = rp.authenticate_begin(
            [credential], user_verification=UserVerificationRequirement.DISCOURAGED)
        response = client.get_assertion(request.public_key).get_response(0)
        return rp.authenticate_complete(state, [credential], response).credential_id == (
            credential.credential_id)

    assert await asyncio.to_thread(ceremony)


@contextlib.contextmanager
def _presence_by_button(world: World) -> Iterator[None]:
    world.live.wearer.auto_presence = False
    try:
        yield
    finally:
        world.live.wearer.auto_presence = True


def _make_credential(world: World, event: threading.Event | None,
                     statuses: list[int]) -> object:
    ctap2 = Ctap2(world.ctap)
    return ctap2.make_credential(
        b"\x01" * 32, {"id": "example.com"}, {"id": b"u2", "name": "bo"},
        [{"type": "public-key", "alg": -7}], event=event, on_keepalive=statuses.append)


async def test_keepalive_up_needed_then_cancel(world: World) -> None:
    statuses: list[int] = []
    event = threading.Event()
    with _presence_by_button(world):
        call = asyncio.create_task(asyncio.to_thread(_make_credential, world, event, statuses))
        for _ in range(100):
            if statuses:
                break
            await asyncio.sleep(0.02)
        event.set()
        with pytest.raises(CtapError) as caught:
            await asyncio.wait_for(call, 5)
    assert statuses == [STATUS.UPNEEDED]
    assert caught.value.code == CtapError.ERR.KEEPALIVE_CANCEL


async def test_keepalive_then_button_press_grants_presence(world: World) -> None:
    statuses: list[int] = []
    with _presence_by_button(world):
        call = asyncio.create_task(asyncio.to_thread(_make_credential, world, None, statuses))
        for _ in range(100):
            if statuses:
                break
            await asyncio.sleep(0.02)
        with world.live.band.lock:
            world.live.band.press(Button.TOP)
            world.live.band.release(Button.TOP)
        made = await asyncio.wait_for(call, 5)
    assert statuses == [STATUS.UPNEEDED] and made is not None


async def test_oversized_request_gets_an_error_frame(world: World) -> None:
    with pytest.raises(CtapError) as caught:
        await asyncio.to_thread(world.ctap.call, 0x01, bytes(8000))  # PING beyond maxMsgSize
    assert caught.value.code == CtapError.ERR.INVALID_LENGTH
    echo = await asyncio.to_thread(world.ctap.call, 0x01, b"ping" * 300)
    assert echo == b"ping" * 300


async def test_management_protocol_over_the_ble_slot(world: World) -> None:
    """Secure session, a command and a pushed event; the backend pairs when the band asks."""
    async with BleakClient(world.plain_radio.address, backend=BleakClientBumble,
                           hci=world.hci, timeout=5) as client:
        async def send(fragment: bytes) -> None:
            await client.write_gatt_char(str(mgmt.REQUEST_UUID), fragment, response=True)

        manager = ManagementClient(send, load_trusted_ca(ROOT_CA), mtu=client.mtu_size)
        await client.start_notify(str(mgmt.NOTIFY_UUID),
                                  lambda _c, data: manager.feed(bytes(data)))
        session = await manager.handshake(expected_serial=PLAIN)
        assert session.serial == PLAIN
        assert (await manager.status()).on_wrist
        await manager.subscribe()
        with world.plain.lock:
            world.plain.take_off()
        try:
            logged = await asyncio.wait_for(manager.events().__anext__(), 2)
        finally:
            with world.plain.lock:
                world.plain.put_on()
        assert logged.event.kind.value == "wrist" and logged.event.data["on_wrist"] is False


async def test_management_slot_requires_an_encrypted_link(world: World) -> None:
    """Raw Bumble host: the write is refused until LE Secure Connections pairing encrypts."""
    transport = world.radio.host_transport("raw")
    device = Device(name="raw", address=hci.Address.generate_static_address(),
                    host=Host(transport.source, transport.sink))
    device.pairing_config_factory = host_pairing_config
    await device.power_on()
    connection = await device.connect(hci.Address(world.plain_radio.address), timeout=5)
    try:
        peer = Peer(connection)
        await peer.request_mtu(517)
        (service,) = await peer.discover_service(str(mgmt.SERVICE_UUID))
        chars = {str(c.uuid).lower(): c for c in await service.discover_characteristics()}
        writer = chars[str(mgmt.REQUEST_UUID).lower()]
        with pytest.raises(att.ATT_Error) as refused:
            await writer.write_value(b"\x00", with_response=True)
        assert refused.value.error_code == att.ErrorCode.INSUFFICIENT_ENCRYPTION
        await connection.pair()
        assert connection.is_encrypted
        await writer.write_value(b"\x00", with_response=True)  # accepted now
    finally:
        await connection.disconnect()
        await device.power_off()
        await transport.close()
