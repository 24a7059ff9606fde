"""Taps, presence and Lock Control from real advertisements, and ``nymi-band scan`` / ``watch``.

Every RSSI here is what a Bumble host received in an HCI advertising report from a simulated
band on a :class:`VirtualRadio` (the band's controller advertises, the radio sets the RSSI from
its path-loss model at the band's distance, bleak with our Bumble backend reports it, and
:func:`scan_bands` turns it into a sighting). Nothing in that path is replaced.

**Time in the scripted walk.** Lock When Away needs 30 s + 10 s of being away, too long to wait
for in wall time. The walking band advertises every 10 ms, and the presence tracker takes each
of its advertisements as 100 ms of time (the simulated band's default advertising interval):
a controlled clock, ``samples x 0.1 s``, about 10x faster than the wall clock, and the same for
every run. The band is moved (``set_distance``) after a scripted number of its advertisements,
so each position lasts an exact number of samples. Reports already on their way when the band
moved would still carry the old distance's RSSI; they are not samples of the new position and
would be dropped and counted (one per move at most is allowed; in-process none arrive, since the
move happens in the scan's own callback before the next report is formed).

**The command-line tests** run in wall time against ``serve_ble`` (HCI over TCP, another
thread), with short windows, moving a band while ``watch`` runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import pytest
import typer

from hosttools.watch import PresenceMonitor, register_ble_commands, state_names
from nymi_device.presence import PresenceConfig, PresenceEvent, PresenceEventKind
from nymi_device.transport.ble import BandSighting, scan_bands
from simulator.band.band import EmulatedBand
from simulator.cli_common import run_app
from simulator.fleet import Fleet
from simulator.frontends.ble import BandRadio, VirtualRadio
from simulator.frontends.hci_bridge import BleServer, serve_ble
from simulator.serve import make_ready

K = PresenceEventKind
WALKER, NEIGHBOUR = "AAAH-00301", "AAAH-00302"
TICK = 0.1
FAR, DESK, TAP, GONE, NEXT_TO_READER = 5.0, 2.0, 0.05, 8.0, 0.5
#: (distance, advertisements there): walk up, tap the reader, leave for 45 s, come back.
SCRIPT = [(FAR, 60), (DESK, 60), (TAP, 10), (DESK, 60), (GONE, 450), (DESK, 50)]


def t(index: int) -> float:
    return index * TICK


def _wear(band: EmulatedBand, *, authenticated: bool) -> None:
    if authenticated:
        make_ready(band)
        return
    if band.on_charger:
        band.detach_charger()
    if not band.on_wrist:
        band.put_on()
    band.settle()


@contextlib.contextmanager
def _fleet(tmp: Path) -> Iterator[tuple[EmulatedBand, EmulatedBand]]:
    fleet = Fleet(tmp / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", WALKER)
    fleet.add_band("nymi-band-3.0", NEIGHBOUR)
    with fleet.open_band(WALKER, save=False) as walker, \
            fleet.open_band(NEIGHBOUR, save=False) as neighbour:
        yield walker, neighbour


class ScriptedWalk:
    """Moves the walker through ``SCRIPT`` by counting its advertisements; feeds the monitor."""

    def __init__(self, walker: BandRadio, monitor: PresenceMonitor) -> None:
        self.walker, self.monitor = walker, monitor
        self.samples = 0
        self.phase, self.held = 0, 0
        self.stale = 0
        self.received: list[tuple[int, int | None]] = []
        self.neighbour_flags: list[list[str]] = []
        self.removal_index: int | None = None
        self.finished = asyncio.Event()

    def clock(self) -> float:
        return t(self.samples)

    def on_sighting(self, sighting: BandSighting) -> None:
        if sighting.serial == NEIGHBOUR:
            self.monitor.feed(sighting, self.clock())
            self.neighbour_flags.append(state_names(sighting.beacon.flags
                                                    if sighting.beacon else None))
            return
        if sighting.serial != WALKER or self.finished.is_set():
            return
        self.received.append((sighting.rssi, sighting.tx_power))
        if sighting.rssi != self.walker.rssi:
            self.stale += 1  # sent before the last move
            return
        events = self.monitor.feed(sighting, self.clock())
        self.samples += 1
        if self.removal_index is not None:
            if any(e.kind == K.LOCK for e in events) or self.samples > self.removal_index + 200:
                self.finished.set()
            return
        self.held += 1
        if self.held == SCRIPT[self.phase][1]:
            self.phase, self.held = self.phase + 1, 0
            if self.phase < len(SCRIPT):
                self.walker.set_distance(SCRIPT[self.phase][0])
            else:
                self.removal_index = self.samples
                self.walker.band.take_off()  # at the desk, the band comes off the wrist


def _kinds(events: list[PresenceEvent]) -> list[PresenceEventKind]:
    return [e.kind for e in events]


async def test_a_walk_past_the_reader_gives_the_events_the_nbe_parameters_imply(
        tmp_path: Path) -> None:
    with _fleet(tmp_path) as (walker_band, neighbour_band):
        _wear(walker_band, authenticated=True)
        _wear(neighbour_band, authenticated=True)
        radio = VirtualRadio()
        walker = BandRadio(radio, walker_band, distance_m=SCRIPT[0][0],
                           advertising_interval_ms=10)
        neighbour = BandRadio(radio, neighbour_band, distance_m=NEXT_TO_READER,
                              advertising_interval_ms=10)
        config = PresenceConfig(lock_control=True)
        async with walker, neighbour:
            walk: ScriptedWalk
            monitor = PresenceMonitor(config, clock=lambda: walk.clock())
            walk = ScriptedWalk(walker, monitor)
            scan = asyncio.create_task(scan_bands(120, hci=radio.host_transport(),
                                                  on_sighting=walk.on_sighting))
            try:
                await asyncio.wait_for(walk.finished.wait(), 90)
            finally:
                scan.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await scan

    # The radio delivered the path-loss model's values, with the band's TX power, and little
    # was in flight at each move.
    tx_power = walker.tx_power_dbm
    model = {round(tx_power - 40 - 20 * math.log10(d)) for d, _n in SCRIPT}
    assert model == {-54, -46, -14, -58}
    assert {rssi for rssi, _tx in walk.received} <= model
    assert {tx for _rssi, tx in walk.received} == {tx_power}
    assert walk.stale <= len(SCRIPT), walk.stale  # in-process: none in practice

    # Defaults: tap window 10, long window 50, tap threshold -42; close proximity at -50 dBm
    # (away below -53); lock 30 s after AWAY plus the 10 s countdown; the session starts locked.
    events = monitor.events_of(WALKER)
    removal = walk.removal_index
    assert removal == sum(n for _d, n in SCRIPT)
    expected = [
        # 5 m (-54): the first full long window is away
        PresenceEvent(K.AWAY, WALKER, t(49), -54.0),
        # 2 m (-46): the average reaches -50 after 25 samples; authenticated: unlocked
        PresenceEvent(K.NEAR, WALKER, t(60 + 24), -50.0),
        PresenceEvent(K.UNLOCK, WALKER, t(60 + 24), detail="present"),
        # 0.05 m (-14): the tap average (8 x -46 + 2 x -14) / 10 = -39.6 >= -42 at the 2nd
        PresenceEvent(K.TAP, WALKER, t(120 + 1), -39.6),
        # 8 m (-58): (20 x -46 + 30 x -58) / 50 = -53.2 < -53 at the 30th sample
        PresenceEvent(K.AWAY, WALKER, t(190 + 29), -53.2),
        PresenceEvent(K.LOCK_COUNTDOWN, WALKER, t(219) + 30.0, deadline_s=t(219) + 40.0),
        PresenceEvent(K.LOCK, WALKER, t(219) + 40.0, detail="away"),
        # back at 2 m: (16 x -58 + 34 x -46) / 50 = -49.84 >= -50 at the 34th sample
        PresenceEvent(K.NEAR, WALKER, t(640 + 33), (16 * -58 + 34 * -46) / 50),
        PresenceEvent(K.UNLOCK, WALKER, t(640 + 33), detail="present"),
    ]
    assert events[:len(expected)] == expected
    # Taken off at the desk: the advertised state drops AUTHENTICATED and ON_WRIST, and the
    # first advertisement that says so locks at once.
    assert len(events) == len(expected) + 1
    lock = events[-1]
    assert (lock.kind, lock.detail) == (K.LOCK, "removed")
    assert t(removal) <= lock.time_s < t(removal + 50)
    state = monitor.tracker.presence(WALKER)
    assert state is not None and state.locked and not state.authenticated
    assert state.flags is not None and state_names(state.flags) == ["enrolled"]

    # The neighbour lies 0.5 m from the reader (-34 dBm) the whole time: in close proximity
    # and authenticated, but it never crossed the tap threshold from below: no tap.
    assert _kinds(monitor.events_of(NEIGHBOUR)) == [K.NEAR, K.UNLOCK]
    assert walk.neighbour_flags[-1] == ["enrolled", "authenticated", "on-wrist"]


# -- the command-line tools over HCI/TCP --------------------------------------------------------

@dataclass
class Served:
    server: BleServer
    loop: asyncio.AbstractEventLoop

    @property
    def moniker(self) -> str:
        return self.server.moniker

    def wait_until_free(self) -> None:
        deadline = time.monotonic() + 5
        while self.server.bridge.has_client and time.monotonic() < deadline:
            time.sleep(0.01)

    def move(self, serial: str, meters: float, after_s: float = 0.0) -> None:
        band = self.server.band(serial)
        self.loop.call_soon_threadsafe(self.loop.call_later, after_s, band.set_distance, meters)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    started = threading.Event()
    box: dict[str, object] = {}

    async def radio() -> None:
        with _fleet(tmp_path_factory.mktemp("ble-presence")) as (walker, neighbour):
            _wear(walker, authenticated=True)
            _wear(neighbour, authenticated=False)
            server = await serve_ble([walker, neighbour], port=0)
            stop = asyncio.Event()
            box.update(server=server, stop=stop, loop=asyncio.get_running_loop())
            started.set()
            await stop.wait()
            await server.close()

    def run() -> None:
        try:
            asyncio.run(radio())
        except BaseException as exc:
            box["error"] = exc
            started.set()

    thread = threading.Thread(target=run, name="presence-radio", daemon=True)
    thread.start()
    assert started.wait(20), "the simulated radio did not start"
    if "error" in box:
        raise AssertionError(f"the simulated radio failed: {box['error']!r}")
    server, loop, stop = box["server"], box["loop"], box["stop"]
    assert isinstance(server, BleServer) and isinstance(loop, asyncio.AbstractEventLoop)
    assert isinstance(stop, asyncio.Event)
    try:
        yield Served(server, loop)
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(10)


def nymi_band(argv: list[str]) -> int:
    """A command-line tool with the global --hci/--target options and the BLE commands."""
    app = typer.Typer(no_args_is_help=True, add_completion=False,
                      pretty_exceptions_enable=False)

    @app.callback()
    def main(ctx: typer.Context,
             hci: Annotated[str | None, typer.Option("--hci")] = None,
             target: Annotated[str | None, typer.Option("--target")] = None) -> None:
        ctx.obj = SimpleNamespace(hci=hci, target=target)

    def options(ctx: typer.Context) -> SimpleNamespace:
        assert isinstance(ctx.obj, SimpleNamespace)
        return ctx.obj

    register_ble_commands(app, options)
    return run_app(app, "nymi-band", argv)


Run = Callable[[list[str]], tuple[int, str, str]]


@pytest.fixture
def run(capsys: pytest.CaptureFixture[str]) -> Run:
    def go(argv: list[str]) -> tuple[int, str, str]:
        capsys.readouterr()
        code = nymi_band(argv)
        out, err = capsys.readouterr()
        return code, out, err

    return go


def test_scan_lists_the_bands_in_range(served: Served, run: Run) -> None:
    served.wait_until_free()
    code, out, err = run(["--hci", served.moniker, "scan", "--seconds", "0.6", "--json"])
    assert (code, err) == (0, "")
    bands = {band["serial"]: band for band in json.loads(out)}
    assert set(bands) == {WALKER, NEIGHBOUR}
    walker, neighbour = bands[WALKER], bands[NEIGHBOUR]
    assert walker["model"] == "Nymi Band" and walker["name"] == f"Nymi-{WALKER}"
    assert walker["state"] == ["enrolled", "authenticated", "on-wrist"]
    assert neighbour["state"] == ["on-wrist"]
    assert walker["rssi"] == -40 and walker["tx_power"] == 0  # 1 m from a 0 dBm band
    assert walker["address"] == served.server.band(WALKER).address
    assert walker["advertisements"] >= 2 and walker["fido_ble"] is False


def test_scan_table_and_target_narrowing(served: Served, run: Run) -> None:
    served.wait_until_free()
    address = served.server.band(NEIGHBOUR).address
    code, out, _err = run(["--hci", served.moniker, "--target", f"ble:{address}", "scan",
                           "--seconds", "0.5"])
    assert code == 0
    assert "Bands in range" in out and NEIGHBOUR in out and WALKER not in out
    served.wait_until_free()
    code, out, _err = run(["--target", f"ble:{address}", "scan", "--hci", served.moniker,
                           "--seconds", "0.5", "--json"])
    assert code == 0 and [band["serial"] for band in json.loads(out)] == [NEIGHBOUR]


def test_watch_shows_a_tap_and_presence_changes_as_they_happen(served: Served, run: Run) -> None:
    served.wait_until_free()
    served.move(WALKER, FAR)
    time.sleep(0.3)  # the move has happened on the radio's loop
    served.move(WALKER, TAP, after_s=1.5)
    served.move(WALKER, FAR, after_s=2.5)
    try:
        code, out, err = run([
            "--hci", served.moniker, "watch", "--seconds", "4.5", "--json", "--lock-control",
            "--rssi-window-tap", "3", "--rssi-window-long", "5"])
    finally:
        served.move(WALKER, 1.0)
    assert (code, err) == (0, "")
    events = json.loads(out)
    walker = [e for e in events if e["serial"] == WALKER]
    # 5 m: away; 0.05 m: the first sample lifts both averages over their thresholds (tap,
    # near, and the authenticated band unlocks); 5 m again: away after 5 samples.
    assert [e["event"] for e in walker] == ["away", "tap", "near", "unlock", "away"]
    assert 1.0 < walker[1]["time_s"] < 2.5 and walker[1]["time_s"] == walker[2]["time_s"]
    assert walker[4]["time_s"] - walker[1]["time_s"] > 0.9
    # The neighbour stays at 1 m (-40 dBm), worn but not authenticated: near, never unlocked.
    assert [e["event"] for e in events if e["serial"] == NEIGHBOUR] == ["near"]


def test_watch_and_scan_refuse_bad_input_with_one_line(served: Served, run: Run,
                                                       tmp_path: Path) -> None:
    code, out, err = run(["watch", "--rssi-tap-threshold", "5", "--seconds", "1"])
    assert (code, out) == (2, "")
    assert err == "error: rssi_tap_threshold must be 0 (taps off) or negative dBm, got 5\n"
    code, _out, err = run(["scan", "--seconds", "0"])
    assert (code, err) == (2, "error: --seconds must be more than 0, got 0\n")
    nbe = tmp_path / "nbe.toml"
    nbe.write_text("rssi_window_tap = 'ten'\n")
    code, _out, err = run(["watch", "--nbe-config", str(nbe)])
    assert (code, err) == (2, "error: nbe.toml: rssi_window_tap must be a whole number, "
                              "got 'ten'\n")
    code, _out, err = run(["watch", "--nbe-config", str(tmp_path / "missing.toml")])
    assert code == 2 and err.startswith("error: cannot read ") and err.count("\n") == 1
    with socket_closed() as port:
        code, out, err = run(["--hci", f"tcp-client:127.0.0.1:{port}", "scan", "--seconds",
                              "0.2"])
    assert code == 1 and err.startswith("error: scan: cannot open HCI transport")
    assert out == ""  # no empty table before the error
    assert err.count("\n") == 1


@contextlib.contextmanager
def socket_closed() -> Iterator[int]:
    """A local TCP port nobody listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    yield port


def test_watch_reads_nbe_toml(served: Served, run: Run, tmp_path: Path) -> None:
    served.wait_until_free()
    nbe = tmp_path / "nbe.toml"
    nbe.write_text('agent_url = "ws://127.0.0.1:9120/socket/websocket"\n'
                   "rssi_window_tap = 2\nrssi_window_long = 3\nrssi_tap_threshold = 0\n")
    served.move(WALKER, FAR)
    time.sleep(0.3)
    served.move(WALKER, TAP, after_s=1.0)
    try:
        code, out, err = run(["--hci", served.moniker, "watch", "--nbe-config", str(nbe),
                              "--seconds", "2", "--json"])
    finally:
        served.move(WALKER, 1.0)
    assert (code, err) == (0, "")
    walker = [e["event"] for e in json.loads(out) if e["serial"] == WALKER]
    assert walker == ["away", "near"]  # rssi_tap_threshold = 0: taps off
