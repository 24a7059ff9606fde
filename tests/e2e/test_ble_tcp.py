"""BLE end to end over HCI/TCP: the simulator's radio on its own thread and event loop, the host
reaching it as it would reach a USB dongle (``tcp-client:127.0.0.1:PORT``) with bleak and our
Bumble backend. Nothing is shared between the two sides but the TCP socket.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from bleak import BleakClient, BleakScanner
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap2.base import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from nymi_device.band import Band
from nymi_device.errors import BandUnreachableError, UnreachableReason
from nymi_device.fido import open_ctap_device
from nymi_device.protocol import fido_ble as fb
from nymi_device.transport.ble import BleBandBackend, CtapBleDevice, scan_bands
from nymi_device.transport.bumble_backend import BleakClientBumble, BleakScannerBumble
from simulator.fixtures import load_fixture
from simulator.fleet import Fleet
from simulator.frontends.hci_bridge import BleServer, serve_ble
from simulator.serve import live_band, make_ready

REF, PLAIN = "AAAH-00125", "AAAH-00126"
RP = PublicKeyCredentialRpEntity(id="example.com", name="Example RP")
USER = PublicKeyCredentialUserEntity(id=b"user-0001", name="ada", display_name="Ada")
ORIGIN = "https://example.com"


@dataclass
class Served:
    moniker: str
    ref_address: str
    plain_address: str
    btsnoop: Path
    server: BleServer

    def wait_until_free(self) -> None:
        """The previous test's host has let go of the radio (its socket teardown is async)."""
        deadline = time.monotonic() + 5
        while self.server.bridge.has_client and time.monotonic() < deadline:
            time.sleep(0.01)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("ble-tcp")
    fleet = Fleet(tmp / "fleet", durable=False)
    fleet.add_band("ctap21-reference", REF)
    fleet.add_band("nymi-band-3.0", PLAIN)
    started = threading.Event()
    box: dict[str, object] = {}

    async def radio() -> None:
        with live_band(fleet, REF, auto_presence=True) as live, fleet.open_band(PLAIN) as plain:
            make_ready(live.band)
            server = await serve_ble([live, plain], port=0, btsnoop=tmp / "hci.btsnoop")
            stop = asyncio.Event()
            box.update(server=server, stop=stop, loop=asyncio.get_running_loop())
            started.set()
            await stop.wait()
            await server.close()

    def run() -> None:
        try:
            asyncio.run(radio())
        except BaseException as exc:  # reported by the fixture below
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="simulated-radio", daemon=True)
    thread.start()
    assert started.wait(20), "the simulated radio did not start"
    if "error" in box:
        raise AssertionError(f"the simulated radio failed: {box['error']!r}")
    server = box["server"]
    assert isinstance(server, BleServer)
    try:
        yield Served(server.moniker, server.band(REF).address, server.band(PLAIN).address,
                     tmp / "hci.btsnoop", server)
    finally:
        loop, stop = box["loop"], box["stop"]
        assert isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event)
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


async def test_scan_connect_pair_read_device_information_and_battery(served: Served) -> None:
    served.wait_until_free()
    sightings = {s.serial: s for s in await scan_bands(0.5, hci=served.moniker)}
    assert set(sightings) == {REF, PLAIN}
    ref = sightings[REF]
    assert ref.name == f"NymiRef-{REF}" and ref.fido_ble and ref.address == served.ref_address
    assert ref.beacon is not None and fb.BandFlags.AUTHENTICATED in ref.beacon.flags
    assert ref.rssi == -40 and ref.tx_power == 0

    async with BleakClient(ref.device, backend=BleakClientBumble, hci=served.moniker,
                           timeout=10) as client:
        assert client.backend_id == "BleakClientBumble"
        assert await client.read_gatt_char(fb.SERIAL_NUMBER) == REF.encode()
        assert await client.read_gatt_char(fb.MODEL_NUMBER) == b"CTAP 2.1 Reference Band"
        assert await client.read_gatt_char(fb.MANUFACTURER_NAME) == b"nymi-band-stack"
        assert 0 <= (await client.read_gatt_char(fb.BATTERY_LEVEL))[0] <= 100
        # The FIDO service demands an encrypted link: the band refuses the read, the backend
        # pairs (LE Secure Connections, Just Works) and retries, as BlueZ does.
        assert await client.read_gatt_char(fb.FIDO_CONTROL_POINT_LENGTH) == b"\x01\xfd"
        await client.pair()  # already paired and encrypted: nothing to do


async def test_band_facade_over_ble(served: Served) -> None:
    served.wait_until_free()
    band = Band(BleBandBackend.from_address(served.plain_address, {"hci": served.moniker}))
    async with band:
        info = await band.info()
        fixture = load_fixture("nymi-band-3.0").identity
        assert (info.serial, info.model, info.manufacturer, info.firmware_version) == (
            PLAIN, fixture.model_name, fixture.manufacturer, fixture.firmware_version)
        assert info.ble_address == served.plain_address and info.fixture == ""
        assert info.capabilities["fido_ble"] is False
        assert "ON_WRIST" not in info.capabilities["advertised_state"]
        with pytest.raises(BandUnreachableError) as refused:
            await band.status()
        assert refused.value.reason == UnreachableReason.UNSUPPORTED


def test_fido2_register_and_assert_over_tcp(served: Served) -> None:
    served.wait_until_free()
    with open_ctap_device(f"ble:{served.ref_address}", hci=served.moniker) as device:
        assert isinstance(device, CtapBleDevice)
        assert "FIDO_2_1" in Ctap2(device).get_info().versions
        rp = Fido2Server(RP)
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
        creation, state = rp.register_begin(
            USER, user_verification=UserVerificationRequirement.DISCOURAGED)
        auth_data = rp.register_complete(state, client.make_credential(creation.public_key))
        credential = auth_data.credential_data
        assert credential is not None
        request, state = rp.authenticate_begin(
            [credential], user_verification=UserVerificationRequirement.DISCOURAGED)
        response = client.get_assertion(request.public_key).get_response(0)
        assert rp.authenticate_complete(state, [credential], response).credential_id == (
            credential.credential_id)


def test_a_second_client_waits_then_is_refused(served: Served) -> None:
    served.wait_until_free()
    served.server.bridge.queue_wait = 0.3
    host, port = "127.0.0.1", served.server.port
    with socket.create_connection((host, port)) as first:
        first.sendall(bytes.fromhex("01030c00"))  # HCI Reset
        assert first.recv(64)[:1] == b"\x04"      # an event: the first client has the radio
        with socket.create_connection((host, port)) as second:
            second.settimeout(5)
            assert second.recv(64) == b""  # closed once the wait is over, nothing received


def test_a_waiting_client_gets_the_radio_when_the_first_leaves(served: Served) -> None:
    served.wait_until_free()
    served.server.bridge.queue_wait = 5.0
    host, port = "127.0.0.1", served.server.port
    first = socket.create_connection((host, port))
    with first, socket.create_connection((host, port)) as second:
        first.sendall(bytes.fromhex("01030c00"))
        assert first.recv(64)[:1] == b"\x04"
        second.sendall(bytes.fromhex("01030c00"))  # held until it has the radio
        time.sleep(0.05)
        first.close()
        second.settimeout(5)
        assert second.recv(64)[:1] == b"\x04"  # Command Complete for its Reset


async def test_scanner_on_a_closed_port_reports_no_adapter() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(BandUnreachableError) as caught:
        await scan_bands(0.1, hci=f"tcp-client:127.0.0.1:{port}")
    assert caught.value.reason == UnreachableReason.NO_ADAPTER


async def test_btsnoop_capture_opens_in_tshark_with_att_traffic(served: Served) -> None:
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (scripts/setup.sh installs it with the Debian "
                    "packages); the capture is written but cannot be decoded here")
    served.wait_until_free()
    async with BleakScanner(backend=BleakScannerBumble, hci=served.moniker) as scanner:
        device = None
        for _ in range(100):
            device = next((d for d in scanner.discovered_devices
                           if d.address == served.plain_address), None)
            if device:
                break
            await asyncio.sleep(0.02)
    assert device is not None
    async with BleakClient(device, backend=BleakClientBumble, hci=served.moniker) as client:
        assert await client.read_gatt_char(fb.SERIAL_NUMBER) == PLAIN.encode()
    with contextlib.suppress(FileNotFoundError):
        assert served.btsnoop.stat().st_size > 16
    result = subprocess.run([tshark, "-r", str(served.btsnoop), "-Y", "btatt"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert any("Read Request" in line for line in lines), result.stdout[-2000:]
    assert any("Read Response" in line for line in lines)
