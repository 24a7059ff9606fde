"""The band management protocol over BLE, end to end.

Two ways in, the same protocol:

* **Over HCI/TCP, two processes.** A daemon (``nymi-sim serve --ble PORT --band SERIAL``) keeps
  a ``nymi-band-3.0`` band on its virtual radio; the test process is the host, with bleak and our
  Bumble backend on ``tcp-client:127.0.0.1:PORT``: scan, connect, pair, Device Information and
  Battery, ``status`` through the ``Band`` facade over ``ble:``, the enrollment flow with a
  :class:`~hosttools.flows.bands.FlowBand` over ``ble:`` (application steps over the protocol,
  physical steps through the daemon's control API, each confirmed by the band's event log),
  moving the band.
* **In process (the fast path).** Band and host on one Bumble ``LocalLink`` in a loop on a
  background thread, one connection for the whole module.

Round trip and connection set-up times are measured on both paths (printed with ``-s``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import AsyncGenerator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hosttools.flows.bands import FlowBand
from hosttools.flows.enroll import enroll
from hosttools.site import ble_target_options, open_flow_band, served_over_ble
from nymi_device.band import Band
from nymi_device.errors import BandCommandError, SecureSessionError, StatusCode
from nymi_device.protocol import fido_ble as fb
from nymi_device.protocol.model import BandEvent, EventKind
from nymi_device.protocol.operator import PhysicalStep
from nymi_device.sync import SyncBand
from nymi_device.transport.ble import BleBandBackend, connect_band, scan_bands
from nymi_device.transport.ble_management import TRUSTED_CA_ENV
from simulator.band.band import EmulatedBand
from simulator.band.management_ble import management_service_for
from simulator.band.management_identity import simulation_root
from simulator.control import CONTROL_FILE, apply_action, daemon_port, send_action
from simulator.fixtures import load_fixture
from simulator.fleet import Fleet
from simulator.frontends.ble import BandRadio, VirtualRadio
from simulator.nes import DEFAULT_GROUP_POLICY, Nes, memory_site
from simulator.operator import SimOperator

SERIAL, LOCAL = "AAAH-00125", "AAAH-00200"
FIXTURE = "nymi-band-3.0"
PASSWORD = "Passw0rd!"
EXE_DIR = Path(sys.executable).parent
TOUCHES = load_fixture(FIXTURE).limits.enrollment_touches
APPLICATION_STEPS = {"enter-setup-code", "start-capture", "set-label",
                     "add-corporate-authenticator", "apply-policy"}

# The daemon as it runs until ``nymi-sim serve --ble`` exists: the same serve_band.
_SERVE = """
import asyncio, sys
from pathlib import Path
from simulator.fleet import Fleet
from simulator.serve import FrontEnds, live_band, serve_band
sim_dir, serial, port, btsnoop = sys.argv[1:5]
fleet = Fleet(Path(sim_dir))
with live_band(fleet, serial, auto_presence=False) as live:
    wanted = FrontEnds(ble_port=int(port), btsnoop=Path(btsnoop))
    asyncio.run(serve_band(live, fleet.band_dir(serial), wanted, lambda t: print(t, flush=True)))
"""


def quiet(title: str, detail: dict[str, Any]) -> None:
    return None


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def other_ca() -> x509.Certificate:
    """A self-signed CA that vouches for no band."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "Not the band identity CA")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(1)
            .not_valid_before(simulation_root().not_valid_before_utc)
            .not_valid_after(simulation_root().not_valid_after_utc)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))


def site_with_user() -> tuple[Any, Nes]:
    site = memory_site()
    site.directory.add_user("CORP\\tw-user2", PASSWORD)
    nes = site.server()
    nes.update_policy(DEFAULT_GROUP_POLICY, {"band_label": True, "corporate_credentials": True,
                                             "haptic_feedback": False})
    return site, nes


def timings(label: str, samples: list[float]) -> float:
    median = statistics.median(samples)
    print(f"\n{label}: median {median * 1000:.2f} ms, min {min(samples) * 1000:.2f} ms, "
          f"max {max(samples) * 1000:.2f} ms over {len(samples)}")
    return median


# === two processes: the daemon on HCI over TCP ===================================================

@dataclass
class Daemon:
    serial: str
    sim_dir: Path
    address: str
    moniker: str
    control_port: int
    btsnoop: Path
    process: subprocess.Popen[str]

    def act(self, action: str, **params: Any) -> dict[str, Any]:
        return send_action(self.control_port, action, params)


def _daemon_command(sim_dir: Path, port: int, btsnoop: Path) -> list[str]:
    cli = EXE_DIR / "nymi-sim"
    help_text = subprocess.run([str(cli), "serve", "--help"], capture_output=True, text=True,
                               timeout=60, env={**os.environ, "NO_COLOR": "1"}).stdout
    if "--ble" in help_text:
        return [str(cli), "serve", "--ble", str(port), "--btsnoop", str(btsnoop),
                "--band", SERIAL, "--sim-dir", str(sim_dir)]
    return [sys.executable, "-c", _SERVE, str(sim_dir), SERIAL, str(port), str(btsnoop)]


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    tmp = tmp_path_factory.mktemp("ble-management")
    fleet = Fleet(tmp / "fleet", durable=False)
    fleet.add_band(FIXTURE, SERIAL)
    btsnoop = tmp / "hci.btsnoop"
    process = subprocess.Popen(_daemon_command(fleet.root, free_tcp_port(), btsnoop),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "NO_COLOR": "1"})
    band_dir = fleet.band_dir(SERIAL)
    deadline = time.monotonic() + 30
    while daemon_port(band_dir) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"the daemon did not start: {out}")
        time.sleep(0.02)
    meta = json.loads((band_dir / CONTROL_FILE).read_text())
    try:
        yield Daemon(SERIAL, fleet.root, meta["ble"]["address"], meta["ble"]["moniker"],
                     int(meta["port"]), btsnoop, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_the_daemon_publishes_its_radio(daemon: Daemon) -> None:
    (served,) = served_over_ble(daemon.sim_dir)
    assert (served.serial, served.address, served.moniker) == (
        SERIAL, daemon.address, daemon.moniker)
    assert daemon.moniker.startswith("tcp-client:127.0.0.1:")
    options = ble_target_options(daemon.address, None, daemon.sim_dir)
    assert options["hci"] == daemon.moniker and "fido2" not in options
    assert options["trusted_ca"] == simulation_root()
    assert ble_target_options("C0:00:00:00:00:01", "usb:0", daemon.sim_dir) == {"hci": "usb:0"}


async def test_scan_connect_pair_read_device_information_and_battery(daemon: Daemon) -> None:
    sightings = {s.serial: s for s in await scan_bands(0.5, hci=daemon.moniker)}
    sighting = sightings[SERIAL]
    assert sighting.address == daemon.address and sighting.name == f"Nymi-{SERIAL}"
    started = time.perf_counter()
    client = await connect_band(sighting, hci=daemon.moniker, pair=True)
    connected = time.perf_counter() - started
    print(f"\nover HCI/TCP: connect + MTU + discovery + pairing {connected * 1000:.1f} ms")
    try:
        fixture = load_fixture(FIXTURE).identity
        assert await client.read_gatt_char(fb.SERIAL_NUMBER) == SERIAL.encode()
        assert await client.read_gatt_char(fb.MODEL_NUMBER) == fixture.model_name.encode()
        assert await client.read_gatt_char(fb.MANUFACTURER_NAME) == fixture.manufacturer.encode()
        assert await client.read_gatt_char(fb.FIRMWARE_REVISION) == (
            fixture.firmware_version.encode())
        level = (await client.read_gatt_char(fb.BATTERY_LEVEL))[0]
        assert level == round(daemon.act("status")["state"]["battery_pct"])
        assert client.services.get_service("f4140001-54d0-4a23-8354-fb91d034adec") is not None
    finally:
        await client.disconnect()


async def test_status_event_log_and_live_events_through_the_band_facade(daemon: Daemon) -> None:
    options = ble_target_options(daemon.address, daemon.moniker, daemon.sim_dir)
    started = time.perf_counter()
    band = await Band.open(f"ble:{daemon.address}", options)
    try:
        status = await band.status()  # the first call pairs and opens the secure session
        set_up = time.perf_counter() - started
        print(f"\nover HCI/TCP: find + connect + pair + handshake + first status "
              f"{set_up * 1000:.1f} ms")
        expected = daemon.act("status")["state"]
        assert status.to_dict() | {"band_time": 0} == expected | {"band_time": 0}

        samples = []
        for _ in range(50):
            t0 = time.perf_counter()
            await band.status()
            samples.append(time.perf_counter() - t0)
        assert timings("over HCI/TCP: GET_STATUS round trip", samples) < 0.25

        worn = await asyncio.to_thread(daemon.act, "wear")
        recent = await band.recent_events(len(worn["events"]))
        # The same events, except the setup code: it never travels from the band (§9).
        for event in worn["events"]:
            event["data"].pop("setup_code", None)
        assert [e.to_dict() for e in recent] == worn["events"]

        events = cast(AsyncGenerator[BandEvent, None], band.events())
        async with contextlib.aclosing(events) as live:
            first = asyncio.ensure_future(anext(live))
            await asyncio.sleep(0.05)  # the subscription is in place
            await asyncio.to_thread(daemon.act, "remove")
            event = await asyncio.wait_for(first, 5)
        assert event.kind == EventKind.WRIST and event.data["on_wrist"] is False
    finally:
        await band.close()


async def test_a_band_the_host_does_not_trust_is_refused(
        daemon: Daemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(TRUSTED_CA_ENV, raising=False)
    for trusted, words in ((other_ca(), "not from a trusted CA"), (None, "no CA")):
        backend = BleBandBackend(daemon.address, hci=daemon.moniker, trusted_ca=trusted)
        async with Band(backend) as band:
            with pytest.raises(SecureSessionError) as refused:
                await band.status()
        assert refused.value.status == StatusCode.UNTRUSTED_BAND
        assert words.lower() in str(refused.value).lower()


def capture_samples(band: FlowBand) -> list[tuple[int, int]]:
    """The capture progress the band's own events confirmed, touch by touch."""
    return [(int(e.data["sample"]), int(e.data["of"])) for outcome in band.outcomes
            if outcome.step is PhysicalStep.TOUCH_SENSOR for e in outcome.events
            if e.kind == EventKind.CAPTURE and "sample" in e.data]


def test_enrollment_flow_over_the_management_protocol(daemon: Daemon) -> None:
    site, nes = site_with_user()
    try:
        with open_flow_band(f"ble:{daemon.address}", sim_dir=daemon.sim_dir) as band:
            assert band.serial == SERIAL and band.info.fixture == FIXTURE
            started = time.perf_counter()
            result = enroll(band, nes, "tw-user2", PASSWORD, quiet, label="line 4")
            print(f"\nover HCI/TCP: enrollment flow {(time.perf_counter() - started) * 1000:.0f} ms")
            assert band.status().enrollment.value == "enrolled"
            progress = capture_samples(band)
        assert result.label == "LINE 4" and result.action
        assert "Wear the band: Setup code" in result.steps
        assert any(step.startswith("Type the setup code") and "'Add User'" in step
                   for step in result.steps)
        assert "Corporate credential authenticator written to the band" in result.steps
        # Every touch was confirmed by the band's capture event, in order.
        assert progress == [(n, TOUCHES) for n in range(1, TOUCHES + 1)]
        # The daemon's band agrees; the NES records it.
        state = daemon.act("status")["state"]
        assert state["enrollment"] == "enrolled" and state["auth"] == "authenticated"
        assert state["band_label"] == "LINE 4" and state["corporate_authenticator"]
        assert state["haptics"] is False
        assert nes.band(SERIAL).owner == "CORP\\tw-user2"
    finally:
        site.close()


async def test_moving_the_band_changes_the_rssi_hosts_see(daemon: Daemon) -> None:
    readings = {}
    try:
        for meters in (0.05, 3.0):
            moved = await asyncio.to_thread(daemon.act, "move", distance=meters)
            assert moved["distance_m"] == meters
            await asyncio.sleep(0.15)
            (sighting,) = [s for s in await scan_bands(0.3, hci=daemon.moniker)
                           if s.serial == SERIAL]
            readings[meters] = sighting.rssi
    finally:
        await asyncio.to_thread(daemon.act, "move", distance=1.0)
    assert readings == {0.05: -14, 3.0: -50}
    with pytest.raises(Exception, match="distance must be"):
        daemon.act("move", distance=-1)


def test_the_daemons_capture_shows_the_management_traffic(daemon: Daemon) -> None:
    """The earlier tests' writes and notifications on the management characteristics."""
    tshark = shutil.which("tshark")
    if tshark is None:
        pytest.skip("tshark is not installed (scripts/setup.sh installs it)")
    result = subprocess.run([tshark, "-r", str(daemon.btsnoop), "-Y", "btatt",
                             "-T", "fields", "-e", "btatt.opcode", "-e", "btatt.value"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    rows = [line.split("\t") for line in result.stdout.splitlines()]
    writes = [value for opcode, *value in rows if opcode == "0x12"]
    notifications = [value for opcode, *value in rows if opcode == "0x1b"]
    # The plain HELLO of a handshake: message 0, fragment 0, a CBOR envelope (§4, §5).
    assert any(v and v[0].startswith("0000") for v in writes)
    assert len(notifications) >= 50  # the status round trips alone


# === in process: one LocalLink, one connection for the module ===================================

@dataclass
class World:
    loop: asyncio.AbstractEventLoop
    band: EmulatedBand
    radio: BandRadio
    backend: BleBandBackend
    connect_s: float
    actions: list[str] = field(default_factory=list)

    def run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(30)

    def control(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        self.actions.append(action)
        return apply_action(self.band, action, params)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    fleet = Fleet(tmp_path_factory.mktemp("ble-management-local") / "fleet", durable=False)
    fleet.add_band(FIXTURE, LOCAL)
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        with fleet.open_band(LOCAL) as band:
            radio = BandRadio(VirtualRadio(), band, management=management_service_for(band),
                              advertising_interval_ms=20)
            await radio.start()
            backend = BleBandBackend(radio.address, hci=radio.radio.host_transport(),
                                     trusted_ca=simulation_root(), timeout=5)
            started = time.perf_counter()
            await backend.connect()
            await backend.management()  # pairs, then the handshake
            box["world"] = World(asyncio.get_running_loop(), band, radio, backend,
                                 time.perf_counter() - started)
            stop = box["stop"] = asyncio.Event()
            ready.set()
            await stop.wait()
            await backend.close()
            await radio.close()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc
            ready.set()

    thread = threading.Thread(target=run, name="ble-management-local", daemon=True)
    thread.start()
    assert ready.wait(30), "the in-process radio did not start"
    if "error" in box:
        raise AssertionError(f"the in-process radio failed: {box['error']!r}")
    world: World = box["world"]
    try:
        yield world
    finally:
        world.loop.call_soon_threadsafe(box["stop"].set)
        thread.join(10)


def test_local_connection_is_paired_and_the_session_proves_the_serial(world: World) -> None:
    print(f"\nin process: find + connect + pair + handshake {world.connect_s * 1000:.1f} ms")
    (connection,) = world.radio.connections
    assert connection.is_encrypted
    management = world.run(world.backend.management())
    assert management.client.session is not None
    assert management.client.session.serial == LOCAL


def test_local_status_round_trip(world: World) -> None:
    async def measure() -> list[float]:
        samples = []
        for _ in range(200):
            t0 = time.perf_counter()
            await world.backend.status()
            samples.append(time.perf_counter() - t0)
        return samples

    status = world.run(Band(world.backend).status())
    with world.band.lock:
        assert status == world.band.status()
    assert timings("in process: GET_STATUS round trip", world.run(measure())) < 0.05


def test_local_enrollment_flow_sends_application_steps_over_the_protocol(world: World) -> None:
    site, nes = site_with_user()
    try:
        band = FlowBand(SyncBand(band=Band(world.backend), loop=world.loop),
                        SimOperator(world.control, load_fixture(FIXTURE)))
        world.control("wear", {})
        with pytest.raises(BandCommandError) as mismatch:
            band.band.enter_setup_code("000000")
        assert mismatch.value.status == StatusCode.SETUP_CODE_MISMATCH
        world.actions.clear()
        started = time.perf_counter()
        result = enroll(band, nes, "tw-user2", PASSWORD, quiet)
        print(f"\nin process: enrollment flow {(time.perf_counter() - started) * 1000:.0f} ms")
        assert result.label == "TW-USER2"
        # The control API moved only the physical world and read the screen; every step of
        # the Nymi Band Application went over the protocol.
        assert not APPLICATION_STEPS & set(world.actions)
        assert world.actions.count("finger") == TOUCHES
        assert capture_samples(band) == [(n, TOUCHES) for n in range(1, TOUCHES + 1)]
        with world.band.lock:
            assert world.band.enrollment.value == "enrolled"
            assert world.band.user.corporate_authenticator
    finally:
        site.close()


def test_local_pushed_events_never_overtake_responses(world: World) -> None:
    """Events from another thread, requests from the host, one session: never reordered.

    The band changes on the test's thread while the host keeps asking for its status; every
    event is sealed the moment it happens, so its fragments must reach the air before any
    response sealed after it (docs/protocol.md §3.1), or the host closes the session.
    """
    subscribed, stop = threading.Event(), threading.Event()

    async def hammer() -> tuple[int, list[int]]:
        client = (await world.backend.management()).client
        client.pending_events()
        await client.subscribe([EventKind.WRIST])
        subscribed.set()
        requests = 0
        while not stop.is_set():
            await client.status()
            requests += 1
        await asyncio.sleep(0.05)
        indices = [e.index for e in client.pending_events() if e.event.kind == EventKind.WRIST]
        await client.unsubscribe()
        assert client.session is not None, client.session_error
        return requests, indices

    future = asyncio.run_coroutine_threadsafe(hammer(), world.loop)
    assert subscribed.wait(5)
    toggles = 0
    for toggles in range(1, 301):
        with world.band.lock:
            if world.band.on_wrist:
                world.band.take_off()
            else:
                world.band.put_on()
        time.sleep(0.0005 * (toggles % 3))
    stop.set()
    requests, indices = future.result(30)
    with world.band.lock:
        logged = [i for i, e in enumerate(world.band.events) if e.kind == EventKind.WRIST]
        if not world.band.on_wrist:
            world.band.put_on()
    print(f"\nin process: {toggles} pushed events interleaved with {requests} requests")
    assert requests > 50
    assert indices == logged[-toggles:]


def test_local_recent_events_match_the_band(world: World) -> None:
    recent = world.run(world.backend.recent_events(10))
    with world.band.lock:
        expected = world.band.events[-10:]
    assert [e.to_dict() for e in recent] == [e.to_dict() for e in expected]
    assert world.run(world.backend.recent_events(0)) == []

