"""A band kept running: its authenticator wired to its body, served on front ends.

``nymi-sim serve`` opens one band of the fleet directory (holding its flash for as long as it
runs), builds the band's FIDO2 authenticator over the band's own flash and body, starts the
requested front ends, and lets band time follow wall time x speed until it is stopped; then the
band's world is saved like after any other command.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import signal
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from nymi_device.errors import (
    BandUnreachableError,
    InvalidInputError,
    PhysicalActionError,
    UnreachableReason,
)
from simulator.band.band import EmulatedBand
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.records import BandPolicy
from simulator.band.wearer_bridge import BandWearer
from simulator.control import ControlServer, DaemonAction
from simulator.fleet import Fleet


@dataclass(frozen=True)
class FrontEnds:
    """Which front ends ``nymi-sim serve`` starts."""

    # (port to bind, port on 127.0.0.1 to send every report to; None: answer each sender)
    ctaphid_udp: tuple[int, int | None] | None = None
    vpcd_slot: int | None = None
    tap: bool = False
    ble_port: int | None = None  # HCI over TCP on 127.0.0.1 (0: any free port)
    btsnoop: Path | None = None  # with ble_port: a BTSnoop capture of that HCI traffic


@dataclass
class LiveBand:
    band: EmulatedBand
    wearer: BandWearer
    authenticator: Authenticator


def pick_serial(fleet: Fleet, serial: str | None) -> str:
    if serial is not None:
        fleet.band_dir(serial)
        return serial
    serials = fleet.serials()
    if len(serials) != 1:
        found = ", ".join(serials) or "none"
        raise InvalidInputError(f"name the band to serve with --band (bands in {fleet.root}: "
                                f"{found})")
    return serials[0]


def make_ready(band: EmulatedBand) -> list[str]:
    """For unattended CI: a worn, enrolled, authenticated band. Returns what was done."""
    done: list[str] = []
    if band.on_charger:
        band.detach_charger()
        done.append("taken off the charger")
    if not band.on_wrist:
        band.put_on()
        done.append("put on a wrist")
    if band.enrollment.value != "enrolled":
        band.enter_setup_code(band.setup_code or "")
        band.start_capture()
        for _ in range(band.fixture.limits.enrollment_touches):
            band.place_finger()
            band.settle()
        band.set_label(None)
        band.apply_policy(BandPolicy(liveness=band.fixture.default_policy.liveness,
                                     haptics=band.fixture.default_policy.haptics))
        done.append("enrolled")
    if band.auth.value == "locked-out":
        raise PhysicalActionError(f"band {band.identity.serial} is locked out; "
                                  "delete its user data first")
    if not band.is_authenticated:
        band.place_finger(match=True, ecg_ok=True)
        done.append("authenticated with a matching finger")
    band.settle()
    return done


@contextlib.contextmanager
def live_band(fleet: Fleet, serial: str, *, auto_presence: bool) -> Iterator[LiveBand]:
    """Open ``serial`` with its authenticator wired to its body; save the world on exit."""
    with fleet.open_band(serial) as band:
        if band.fixture.ctap is None:
            raise InvalidInputError(
                f"band {serial} ({band.fixture.id}) has no FIDO2 authenticator")
        wearer = BandWearer(band, auto_presence=auto_presence)
        authenticator = Authenticator(band.fixture, band.storage, wearer)  # hooks itself up
        yield LiveBand(band, wearer, authenticator)


@contextlib.contextmanager
def running_band(fleet: Fleet, serial: str, *, auto_presence: bool
                 ) -> Iterator[LiveBand | EmulatedBand]:
    """The band with its authenticator (:func:`live_band`) where it has one, else the band
    alone (a band without FIDO2 still goes on the air)."""
    if fleet.fixture_of(serial).ctap is None:
        with fleet.open_band(serial) as band:
            yield band
        return
    with live_band(fleet, serial, auto_presence=auto_presence) as live:
        yield live


async def run_until_stopped(band: EmulatedBand, announce: Callable[[], None]) -> None:
    """Advance band time with wall time until SIGINT or SIGTERM."""
    await _run_all([band], announce, None)


#: Called once every front end listens, with :func:`ready_record`.
Ready = Callable[[dict[str, Any]], None]


def ready_record(band: EmulatedBand, control_port: int, meta: dict[str, Any]) -> dict[str, Any]:
    """What a served band tells the processes that use it, once every front end listens: its
    serial, fixture, control port and the ports (and host targets) of its front ends."""
    record: dict[str, Any] = {"event": "ready", "serial": band.identity.serial,
                              "fixture": band.fixture.id, "control_port": control_port}
    udp = meta.get("ctaphid_udp")
    if udp:
        reply = f"/{udp[1]}" if udp[1] is not None else ""
        record["ctaphid_udp"] = {"port": udp[0], "reply_port": udp[1],
                                 "target": f"udp:127.0.0.1:{udp[0]}{reply}"}
    if meta.get("vpcd"):
        record["vpcd"] = {**meta["vpcd"], "target": f"pcsc:{meta['vpcd']['reader']}"}
    if meta.get("ble"):
        ble = meta["ble"]
        record["ble"] = {**ble, "target": f"ble:{ble['address']}", "hci": ble["moniker"]}
    return record


def free_udp_port(host: str = "127.0.0.1") -> int:
    """A UDP port nobody listens on now (for a reply port the host binds next)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


async def serve_band(running: LiveBand | EmulatedBand, band_dir: Path, wanted: FrontEnds,
                     say: Callable[[str], None], ready: Ready | None = None) -> None:
    """Start the front ends and the control API; run until SIGINT/SIGTERM; stop them.

    ``ready`` gets :func:`ready_record` once everything listens (ports chosen as 0 resolved).
    A band without an authenticator (``EmulatedBand`` alone) can only go on the air."""
    from simulator.control import ControlServer

    if isinstance(running, EmulatedBand):
        if wanted.ctaphid_udp is not None or wanted.vpcd_slot is not None:
            raise InvalidInputError(f"band {running.identity.serial} ({running.fixture.id}) "
                                    "has no FIDO2 authenticator: serve it with --ble only")
        band = running
        await _serve_band_only(band, band_dir, wanted, say, ready)
        return
    live = running
    serial = live.band.identity.serial
    async with contextlib.AsyncExitStack() as stack:
        meta: dict[str, Any] = {}
        extra: dict[str, Callable[[], None]] = {}
        daemon_actions: dict[str, DaemonAction] = {}
        if wanted.ctaphid_udp is not None:
            from simulator.frontends.ctaphid_udp import serve_ctaphid_udp

            port, peer = wanted.ctaphid_udp
            try:
                server = await serve_ctaphid_udp(
                    live.authenticator, port=port,
                    peer=None if peer is None else ("127.0.0.1", peer))
            except OSError as exc:
                raise BandUnreachableError(
                    f"cannot serve CTAPHID on UDP 127.0.0.1:{port}: {exc.strerror}",
                    UnreachableReason.TRANSPORT_FAILED) from None
            stack.push_async_callback(server.close)
            extra["power-cycle"] = server.power_cycle
            port = server.address[1]
            meta["ctaphid_udp"] = [port, peer]
            to = "each sender" if peer is None else f"127.0.0.1:{peer}"
            say(f"serving {serial} as CTAPHID over UDP on 127.0.0.1:{port}, answering {to}")
        if wanted.vpcd_slot is not None:
            reader = await _start_vpcd(live, wanted.vpcd_slot, stack, daemon_actions, say)
            meta["vpcd"] = {"slot": wanted.vpcd_slot, "reader": reader}
            if wanted.tap:
                await daemon_actions["tap"]({})
        if wanted.ble_port is not None:
            meta["ble"] = await _start_ble(live, wanted.ble_port, wanted.btsnoop, stack,
                                           daemon_actions, say)
        control = ControlServer(live.band, band_dir, extra=extra, meta=meta,
                                daemon_actions=daemon_actions)
        control_port = await control.start()
        stack.push_async_callback(control.close)
        await run_until_stopped(live.band, lambda: _announce(
            live.band, control_port, meta, say, ready))


def _announce(band: EmulatedBand, control_port: int, meta: dict[str, Any],
              say: Callable[[str], None], ready: Ready | None) -> None:
    say(f"{band.identity.serial} ({band.fixture.id}) is running; Ctrl-C stops")
    if ready is not None:
        ready(ready_record(band, control_port, meta))


async def _serve_band_only(band: EmulatedBand, band_dir: Path, wanted: FrontEnds,
                           say: Callable[[str], None], ready: Ready | None = None) -> None:
    from simulator.control import ControlServer

    async with contextlib.AsyncExitStack() as stack:
        actions: dict[str, DaemonAction] = {}
        meta: dict[str, Any] = {}
        if wanted.ble_port is not None:
            meta["ble"] = await _start_ble(band, wanted.ble_port, wanted.btsnoop, stack,
                                           actions, say)
        control = ControlServer(band, band_dir, meta=meta, daemon_actions=actions)
        control_port = await control.start()
        stack.push_async_callback(control.close)
        await run_until_stopped(band, lambda: _announce(band, control_port, meta, say, ready))


async def _start_vpcd(live: LiveBand, slot: int, stack: contextlib.AsyncExitStack,
                      actions: dict[str, DaemonAction], say: Callable[[str], None]) -> str:
    from simulator.band.nfc import build_card_os
    from simulator.frontends.vpcd import VpcdFrontend
    from simulator.pcscd import ensure_pcscd

    pcscd = await asyncio.to_thread(ensure_pcscd)
    stack.callback(pcscd.stop)
    card = build_card_os(live.band, live.authenticator, verified=live.wearer.is_verified)
    stack.callback(card.close)
    frontend = VpcdFrontend(card, slot=slot)
    stack.push_async_callback(_untap_quietly, frontend)

    async def tap(params: dict[str, Any]) -> dict[str, Any]:
        if not frontend.tapped:
            await frontend.tap()
        say(f"{live.band.identity.serial} is on reader '{frontend.reader_name}'")
        return {"reader": frontend.reader_name, "tapped": True}

    async def untap(params: dict[str, Any]) -> dict[str, Any]:
        if frontend.tapped:
            await frontend.untap()
        say(f"{live.band.identity.serial} is off the reader")
        return {"reader": frontend.reader_name, "tapped": False}

    actions["tap"] = tap
    actions["untap"] = untap
    say(f"the band is a contactless card for vpcd slot {slot} ('{frontend.reader_name}')"
        f"{' (pcscd started)' if pcscd.started else ''}")
    return str(frontend.reader_name)


async def _start_ble(live: LiveBand | EmulatedBand, port: int, btsnoop: Path | None,
                     stack: contextlib.AsyncExitStack, actions: dict[str, DaemonAction],
                     say: Callable[[str], None]) -> dict[str, Any]:
    """The band on a virtual radio with its management service, the radio as HCI over TCP."""
    from simulator.band.management_ble import management_service_for
    from simulator.frontends.hci_bridge import serve_ble

    band = live if isinstance(live, EmulatedBand) else live.band
    serial = band.identity.serial
    try:
        server = await serve_ble([live], port, btsnoop, management=management_service_for)
    except OSError as exc:
        raise BandUnreachableError(
            f"cannot serve the virtual radio on TCP 127.0.0.1:{port}: {exc.strerror or exc}",
            UnreachableReason.TRANSPORT_FAILED) from None
    stack.push_async_callback(server.close)
    band_radio = server.band(serial)

    async def move(params: dict[str, Any]) -> dict[str, Any]:
        meters = params.get("distance")
        if (not isinstance(meters, int | float) or isinstance(meters, bool)
                or not math.isfinite(meters) or meters < 0):
            raise InvalidInputError(f"distance must be a number of metres >= 0, got {meters!r}")
        band_radio.set_distance(float(meters))
        return {"distance_m": band_radio.distance_m, "rssi": band_radio.rssi}

    actions["move"] = move
    say(f"{serial} is on the air as {band_radio.address} ({band_radio.local_name}); "
        f"the radio is HCI over TCP at {server.moniker}"
        + (f", captured to {btsnoop}" if btsnoop is not None else ""))
    return {"port": server.port, "moniker": server.moniker, "address": band_radio.address}


async def _untap_quietly(frontend: Any) -> None:
    with contextlib.suppress(Exception):
        if frontend.tapped:
            await frontend.untap()


# --- the whole fleet in one process (``nymi-sim serve --all``) ----------------------------------

#: vpcd reader slots pcscd's vpcd driver offers (``Virtual PCD 00`` … ``09``).
VPCD_SLOTS = 10


@dataclass(frozen=True)
class FleetFrontEnds:
    """Which front ends ``nymi-sim serve --all`` starts for every band.

    Band ``i`` (in serial order) is on CTAPHID-UDP port ``udp_base + i`` replying to
    ``udp_peer_base + i``, and on vpcd slot ``i`` for the first :data:`VPCD_SLOTS` bands; all
    bands share one radio, reachable as HCI over TCP on ``ble_port``.
    """

    ble_port: int | None = None
    vpcd: bool = False
    udp_base: int | None = None
    udp_peer_base: int = 7112


@dataclass
class ServedFleet:
    """The bands of a fleet held open by one process, with what each is served on."""

    bands: list[LiveBand]
    plain: list[EmulatedBand]  # bands whose fixture has no FIDO2 authenticator (BLE only)
    start_s: float = 0.0


def raise_open_file_limit() -> int:
    """Lift this process's open-file limit to its hard limit (a served band holds files and
    sockets); returns the limit now in force."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        return int(hard)
    return int(soft)


def fds_per_band(wanted: FleetFrontEnds) -> int:
    """Files and sockets one served band holds: its flash lock, its control socket, and its
    UDP socket when CTAPHID-UDP is served."""
    return 2 + (1 if wanted.udp_base is not None else 0)


@contextlib.contextmanager
def live_fleet(fleet: Fleet, *, auto_presence: bool) -> Iterator[ServedFleet]:
    """Open every band of ``fleet`` (authenticators wired where the fixture has one); every
    band's world is saved when the block ends without an error."""
    serials = fleet.serials()
    if not serials:
        raise InvalidInputError(f"no bands in {fleet.root}: add some with 'nymi-sim band add'")
    with contextlib.ExitStack() as stack:
        served = ServedFleet([], [])
        for serial in serials:
            if fleet.fixture_of(serial).ctap is None:
                served.plain.append(stack.enter_context(fleet.open_band(serial)))
            else:
                served.bands.append(stack.enter_context(
                    live_band(fleet, serial, auto_presence=auto_presence)))
        yield served


async def serve_fleet(served: ServedFleet, fleet: Fleet, wanted: FleetFrontEnds,
                      say: Callable[[str], None], stop: asyncio.Event | None = None) -> None:
    """Put every band on its front ends with its control API; run until SIGINT/SIGTERM (or
    until ``stop`` is set, when given)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with contextlib.AsyncExitStack() as stack:
        metas: dict[str, dict[str, Any]] = {}
        extras: dict[str, dict[str, Callable[[], None]]] = {}
        actions: dict[str, dict[str, DaemonAction]] = {}
        everyone = [live.band for live in served.bands] + served.plain
        for band in everyone:
            serial = band.identity.serial
            metas[serial], extras[serial], actions[serial] = {}, {}, {}
        if wanted.udp_base is not None:
            await _start_udp_all(served.bands, wanted, stack, metas, extras)
            say(f"CTAPHID over UDP: {len(served.bands)} bands on 127.0.0.1:{wanted.udp_base}"
                f"-{wanted.udp_base + len(served.bands) - 1}")
        if wanted.vpcd:
            for slot, live in enumerate(served.bands[:VPCD_SLOTS]):
                serial = live.band.identity.serial
                reader = await _start_vpcd(live, slot, stack, actions[serial], say)
                metas[serial]["vpcd"] = {"slot": slot, "reader": reader}
            if len(served.bands) > VPCD_SLOTS:
                say(f"vpcd has {VPCD_SLOTS} reader slots: the other "
                    f"{len(served.bands) - VPCD_SLOTS} bands are not on a reader")
        if wanted.ble_port is not None:
            await _start_ble_all(served, wanted.ble_port, stack, metas, actions, say)
        for band in everyone:
            serial = band.identity.serial
            control = ControlServer(band, fleet.band_dir(serial), extra=extras[serial],
                                    meta=metas[serial], daemon_actions=actions[serial])
            await control.start()
            stack.push_async_callback(control.close)
        served.start_s = loop.time() - started
        await _run_all(everyone, lambda: say(
            f"{len(everyone)} bands of {fleet.root} are running (started in "
            f"{served.start_s:.2f} s); Ctrl-C stops"), stop)


async def _start_udp_all(bands: list[LiveBand], wanted: FleetFrontEnds,
                         stack: contextlib.AsyncExitStack, metas: dict[str, dict[str, Any]],
                         extras: dict[str, dict[str, Callable[[], None]]]) -> None:
    from simulator.frontends.ctaphid_udp import serve_ctaphid_udp

    assert wanted.udp_base is not None
    for index, live in enumerate(bands):
        port, peer = wanted.udp_base + index, wanted.udp_peer_base + index
        if port > 65535 or peer > 65535:
            raise InvalidInputError(f"{len(bands)} bands from UDP port {wanted.udp_base} "
                                    f"(replies from {wanted.udp_peer_base}) run past port 65535")
        try:
            server = await serve_ctaphid_udp(live.authenticator, port=port,
                                             peer=("127.0.0.1", peer))
        except OSError as exc:
            raise BandUnreachableError(
                f"cannot serve {live.band.identity.serial} as CTAPHID on UDP 127.0.0.1:{port}: "
                f"{exc.strerror}", UnreachableReason.TRANSPORT_FAILED) from None
        stack.push_async_callback(server.close)
        serial = live.band.identity.serial
        extras[serial]["power-cycle"] = server.power_cycle
        metas[serial]["ctaphid_udp"] = [port, peer]


async def _start_ble_all(served: ServedFleet, port: int, stack: contextlib.AsyncExitStack,
                         metas: dict[str, dict[str, Any]],
                         actions: dict[str, dict[str, DaemonAction]],
                         say: Callable[[str], None]) -> None:
    from simulator.band.management_ble import management_service_for
    from simulator.frontends.hci_bridge import serve_ble

    items: list[EmulatedBand | LiveBand] = [*served.bands, *served.plain]
    try:
        server = await serve_ble(items, port, management=management_service_for)
    except OSError as exc:
        raise BandUnreachableError(
            f"cannot serve the virtual radio on TCP 127.0.0.1:{port}: {exc.strerror or exc}",
            UnreachableReason.TRANSPORT_FAILED) from None
    stack.push_async_callback(server.close)
    for band_radio in server.bands:
        actions[band_radio.serial]["move"] = _mover(band_radio)
        metas[band_radio.serial]["ble"] = {"port": server.port, "moniker": server.moniker,
                                           "address": band_radio.address}
    say(f"{len(server.bands)} bands on the air; the radio is HCI over TCP at {server.moniker}")


def _mover(band_radio: Any) -> DaemonAction:
    async def move(params: dict[str, Any]) -> dict[str, Any]:
        meters = params.get("distance")
        if (not isinstance(meters, int | float) or isinstance(meters, bool)
                or not math.isfinite(meters) or meters < 0):
            raise InvalidInputError(f"distance must be a number of metres >= 0, got {meters!r}")
        band_radio.set_distance(float(meters))
        return {"distance_m": band_radio.distance_m, "rssi": band_radio.rssi}

    return move


async def _run_all(bands: list[EmulatedBand], announce: Callable[[], None],
                   stop: asyncio.Event | None) -> None:
    """One ticker advances every band's time; stop on SIGINT/SIGTERM or when ``stop`` is set."""
    if stop is None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(sig, stop.set)
    ticker = asyncio.create_task(_tick_all(bands))
    announce()
    try:
        await stop.wait()
    finally:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker


async def _tick_all(bands: list[EmulatedBand], tick: float = 0.05) -> None:
    loop = asyncio.get_running_loop()
    last = loop.time()
    while True:
        await asyncio.sleep(tick)
        now = loop.time()
        for band in bands:
            with band.lock:
                band.clock.advance((now - last) * band.clock.speed)
        last = now
