"""``nymi-sim``: create simulated bands and move their physical world.

Every action names the band, changes only that band, and reports the band's resulting screen,
haptics and state (``--json`` for machines). A refused action prints one line, exits non-zero and
leaves the fleet directory unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from nymi_device.cli_support import (
    LogFileOption,
    LogLevelOption,
    VerboseOption,
    VersionOption,
    configure_logging,
    emit_json,
    plain_help,
    run_app,
)
from nymi_device.errors import PhysicalActionError
from nymi_device.protocol.model import Button

if TYPE_CHECKING:  # the band model is imported when a command runs (fast --help)
    from simulator.fleet import Fleet

app = typer.Typer(
    help="Simulated Nymi bands: create them and drive their physical world.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
    pretty_exceptions_enable=False,
)
band_app = typer.Typer(help="Create and list simulated bands.", no_args_is_help=True)
fixture_app = typer.Typer(help="Firmware fixtures (band models).", no_args_is_help=True)
app.add_typer(band_app, name="band")
app.add_typer(fixture_app, name="fixture")
nes_app = typer.Typer(help="The simulated enterprise server (NES).", no_args_is_help=True)
app.add_typer(nes_app, name="nes")
console = Console(highlight=False)

SimDir = Annotated[
    Path | None,
    typer.Option("--sim-dir", help="Fleet directory (default ./.nymi-sim or $NYMI_SIM_DIR)."),
]
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Serial = Annotated[str, typer.Argument(help="The band's serial number, e.g. AAAH-00125.")]


#: The global ``--sim-dir`` (a command's own ``--sim-dir`` wins over it).
_global_sim_dir: list[Path | None] = [None]


@app.callback()
def main_options(
    sim_dir: Annotated[Path | None, typer.Option(
        "--sim-dir", envvar="NYMI_SIM_DIR",
        help="Fleet directory of simulated bands (default ./.nymi-sim); also accepted after "
        "each command.")] = None,
    verbose: VerboseOption = 0,
    log_level: LogLevelOption = None,
    log_file: LogFileOption = None,
    version: VersionOption = False,
) -> None:
    _global_sim_dir[0] = sim_dir
    configure_logging(verbose, log_level, log_file)


def _fleet(sim_dir: Path | None) -> Fleet:
    from simulator.fleet import Fleet, default_sim_dir

    return Fleet(sim_dir or _global_sim_dir[0] or default_sim_dir())


def _report(result: dict[str, object], as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    state = result["state"]
    assert isinstance(state, dict)
    screens = result["screens"]
    assert isinstance(screens, list)
    shown = " -> ".join(f"'{s}'" for s in screens) if screens else f"'{result['screen']}'"
    haptics = ", ".join(str(h) for h in result["haptics"]) or "none"  # type: ignore[attr-defined]
    console.print(f"[bold]{result['serial']}[/]  screen {shown}  haptics: {haptics}")
    console.print(
        f"  {state['power']}, {'on wrist' if state['on_wrist'] else 'off wrist'}, "
        f"{'on charger' if state['on_charger'] else 'off charger'}, "
        f"battery {state['battery_pct']:.0f}%, {state['enrollment']}, {state['auth']}"
    )


def _act(sim_dir: Path | None, serial: str, as_json: bool, action: str,
         params: dict[str, Any] | None = None) -> None:
    """Apply a control action: through the band's daemon when one serves it, else in-process."""
    from simulator.control import apply_action, daemon_port, send_action


    fleet = _fleet(sim_dir)
    port = daemon_port(fleet.band_dir(serial))
    if port is not None:
        result = send_action(port, action, params)
    else:
        with fleet.open_band(serial) as band:
            result = apply_action(band, action, params or {})
    _report(result, as_json)


@band_app.command("add")
def band_add(
    fixture: Annotated[str, typer.Option("--fixture", help="Fixture id, e.g. nymi-band-3.0.")],
    serial: Annotated[str, typer.Option("--serial", help="Serial, form AAAA-00000.")],
    sim_dir: SimDir = None,
    as_json: Json = False,
) -> None:
    """Create a band from a firmware fixture."""
    from simulator.fleet import describe

    band = _fleet(sim_dir).add_band(fixture, serial)
    _report(describe(band), as_json)


@band_app.command("list")
def band_list(sim_dir: SimDir = None, as_json: Json = False) -> None:
    """List the fleet's bands with their present state."""
    from simulator.control import daemon_port, send_action

    fleet = _fleet(sim_dir)
    rows = []
    for serial in fleet.serials():
        port = daemon_port(fleet.band_dir(serial))
        if port is not None:
            state = send_action(port, "status")["state"]
        else:
            with fleet.open_band(serial, save=False) as band:
                state = band.status().to_dict()
        rows.append({"serial": serial, "fixture": fleet.fixture_of(serial).id,
                     "served": port is not None, **state})
    if as_json:
        emit_json(rows)
        return
    table = Table("Serial", "Fixture", "Screen", "Enrollment", "Auth", "Battery")
    for row in rows:
        table.add_row(str(row["serial"]), str(row["fixture"]), str(row["screen"]),
                      str(row["enrollment"]), str(row["auth"]), f"{row['battery_pct']:.0f}%")
    console.print(table if rows else f"no bands in {fleet.root}")


@fixture_app.command("list")
def fixture_list(as_json: Json = False) -> None:
    """List the firmware fixtures bands can be built from."""
    from simulator.fixtures import all_fixtures

    rows = [{"id": f.id, "model": f.identity.model_name,
             "firmware": f.identity.firmware_version, "description": f.description}
            for f in all_fixtures()]
    if as_json:
        emit_json(rows)
        return
    table = Table("Fixture", "Model", "Firmware", "Description")
    for row in rows:
        table.add_row(row["id"], row["model"], row["firmware"], row["description"])
    console.print(table)


@app.command()
def status(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Show the band's present state (reads only: nothing in the fleet directory changes)."""
    from simulator.control import apply_action, daemon_port, send_action

    fleet = _fleet(sim_dir)
    port = daemon_port(fleet.band_dir(serial))
    if port is not None:
        result = send_action(port, "status")
    else:
        with fleet.open_band(serial, save=False) as band:
            result = apply_action(band, "status", {})
    _report(result, as_json)


@app.command()
def wear(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Put the band on a wrist."""
    _act(sim_dir, serial, as_json, "wear")


@app.command()
def remove(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Take the band off the wrist."""
    _act(sim_dir, serial, as_json, "remove")


@app.command()
def charge(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Put the band on its charger."""
    _act(sim_dir, serial, as_json, "charge")


@app.command()
def uncharge(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Take the band off its charger."""
    _act(sim_dir, serial, as_json, "uncharge")


@app.command("hold-button")
def hold_button(
    serial: Serial,
    button: Annotated[Button, typer.Argument(help="top or bottom")],
    seconds: Annotated[float, typer.Argument(min=0, help="Band seconds to hold it.")],
    sim_dir: SimDir = None,
    as_json: Json = False,
) -> None:
    """Hold a button for some band seconds, then release it."""
    _act(sim_dir, serial, as_json, "hold", {"button": button.value, "seconds": seconds})


@app.command()
def finger(
    serial: Serial,
    match: Annotated[bool, typer.Option("--match/--no-match",
                                        help="Whether the finger matches the template.")] = True,
    ecg: Annotated[bool, typer.Option("--ecg/--no-ecg",
                                      help="Whether a steady ECG reaches the bezel.")] = True,
    sim_dir: SimDir = None,
    as_json: Json = False,
) -> None:
    """Place a finger on the sensor and bezel (enrollment capture or authentication)."""
    _act(sim_dir, serial, as_json, "finger", {"match": match, "ecg": ecg})


@app.command()
def battery(
    serial: Serial,
    percent: Annotated[float, typer.Argument(min=0, max=100, help="Charge level, 0-100.")],
    sim_dir: SimDir = None,
    as_json: Json = False,
) -> None:
    """Set the battery's charge level."""
    _act(sim_dir, serial, as_json, "battery", {"percent": percent})


@app.command()
def wait(
    serial: Serial,
    seconds: Annotated[float, typer.Argument(min=0, help="Band seconds to let pass.")],
    sim_dir: SimDir = None,
    as_json: Json = False,
) -> None:
    """Let band time pass (battery drains or charges, the screen sleeps)."""
    _act(sim_dir, serial, as_json, "wait", {"seconds": seconds})


@app.command()
def serve(
    ctaphid_udp: Annotated[bool, typer.Option(
        "--ctaphid-udp", help="Serve FIDO2 as CTAPHID over UDP (bind --port; answer each "
        "sender, or --peer-port; hosts reach it as udp:127.0.0.1:PORT/PEERPORT).")
    ] = False,
    vpcd: Annotated[bool, typer.Option(
        "--vpcd", help="Make the band a contactless card for pcscd's vpcd reader.")] = False,
    ble: Annotated[int | None, typer.Option(
        "--ble", min=0, max=65535, help="Put the band on the air and expose the virtual radio "
        "as HCI over TCP on this port (0: any free port).")] = None,
    btsnoop: Annotated[Path | None, typer.Option(
        "--btsnoop", help="With --ble: write a btsnoop capture of the HCI traffic here.")] = None,
    band: Annotated[str | None, typer.Option(
        "--band", help="Serial of the band to serve (default: the fleet's only band).")] = None,
    tap: Annotated[str | None, typer.Option(
        "--tap", help="With --vpcd: this band (serial) is on the reader until stopped.")] = None,
    slot: Annotated[int, typer.Option(min=0, max=9, help="vpcd reader slot.")] = 0,
    auto_presence: Annotated[bool, typer.Option(
        "--auto-presence", help="Answer every request for the wearer's action at once, as a "
        "matching finger on a worn band would (unattended CI).")] = False,
    port: Annotated[int, typer.Option(
        min=0, max=65535, help="UDP port to bind (0: any free port).")] = 8111,
    peer_port: Annotated[int | None, typer.Option(
        min=0, max=65535, help="Send every report to this UDP port on 127.0.0.1 (0: a free "
        "port) instead of answering each sender (the public tooling sends from 7112 and is "
        "answered there); with --port 0 a free one is picked.")] = None,
    speed: Annotated[float, typer.Option(min=0.001, help="Band seconds per wall second.")] = 1.0,
    serve_all: Annotated[bool, typer.Option(
        "--all", help="Serve every band of the fleet from this one process: all on one radio "
        "(--ble), band i on UDP port PORT+i replying to PEER_PORT+i (--ctaphid-udp), the "
        "first ten on vpcd slots 0-9 (--vpcd).")] = False,
    sim_dir: SimDir = None,
) -> None:
    """Keep a band running and serve it to other processes until stopped (Ctrl-C).

    Once every front end listens it prints one JSON line (``"event": "ready"``) with the
    serial, the ports chosen (0 picks free ones) and the target each front end is reached by.
    """
    import asyncio

    from simulator.band.band import EmulatedBand
    from simulator.serve import (
        FrontEnds,
        free_udp_port,
        make_ready,
        pick_serial,
        running_band,
        serve_band,
    )

    if not (ctaphid_udp or vpcd or ble is not None):
        raise typer.BadParameter("choose at least one front end (--ctaphid-udp, --vpcd, --ble)")
    if serve_all:
        for given, name in ((band, "--band"), (tap, "--tap"), (btsnoop, "--btsnoop")):
            if given is not None:
                raise typer.BadParameter(f"--all serves every band: {name} does not apply")
        _serve_all(_fleet(sim_dir), ctaphid_udp=ctaphid_udp, vpcd=vpcd, ble=ble, port=port,
                   peer_port=7112 if peer_port is None else peer_port, speed=speed,
                   auto_presence=auto_presence)
        return
    if btsnoop is not None and ble is None:
        raise typer.BadParameter("--btsnoop needs --ble")
    if tap is not None and not vpcd:
        raise typer.BadParameter("--tap needs --vpcd")
    if tap is not None and band is not None and tap != band:
        raise typer.BadParameter("--tap and --band name different bands")
    if peer_port is None and port == 0:
        peer_port = 0  # a free port, so the ready line can name the whole target
    if peer_port == 0:
        peer_port = free_udp_port()
    fleet = _fleet(sim_dir)
    serial = pick_serial(fleet, band or tap)
    with running_band(fleet, serial, auto_presence=auto_presence) as live:
        band_of = live if isinstance(live, EmulatedBand) else live.band
        band_of.clock.speed = speed
        if auto_presence:
            for step in make_ready(band_of):
                console.print(f"{serial}: {step}")
        wanted = FrontEnds(ctaphid_udp=(port, peer_port) if ctaphid_udp else None,
                           vpcd_slot=slot if vpcd else None, tap=tap is not None,
                           ble_port=ble, btsnoop=btsnoop)
        asyncio.run(serve_band(live, fleet.band_dir(serial), wanted,
                               lambda text: console.print(text, markup=False), _ready_line))


def _ready_line(record: dict[str, Any]) -> None:
    """The one machine-readable line ``serve`` prints once everything listens (JSON)."""
    import json

    print(json.dumps(record, sort_keys=True), flush=True)


def _serve_all(fleet: Fleet, *, ctaphid_udp: bool, vpcd: bool, ble: int | None, port: int,
               peer_port: int, speed: float, auto_presence: bool) -> None:
    import asyncio

    from simulator.serve import (
        FleetFrontEnds,
        fds_per_band,
        live_fleet,
        make_ready,
        raise_open_file_limit,
        serve_fleet,
    )

    wanted = FleetFrontEnds(ble_port=ble, vpcd=vpcd, udp_base=port if ctaphid_udp else None,
                            udp_peer_base=peer_port)
    limit = raise_open_file_limit()
    count = len(fleet.serials())
    if count * fds_per_band(wanted) + 64 > limit:
        raise PhysicalActionError(
            f"{count} bands need about {count * fds_per_band(wanted) + 64} open files and "
            f"sockets, over this process's limit of {limit} (raise it with 'ulimit -n')")
    with live_fleet(fleet, auto_presence=auto_presence) as served:
        for live in served.bands:
            live.band.clock.speed = speed
            if auto_presence:
                make_ready(live.band)
        for band in served.plain:
            band.clock.speed = speed
        asyncio.run(serve_fleet(served, fleet, wanted,
                                lambda text: console.print(text, markup=False)))


@app.command("power-cycle")
def power_cycle(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Cut the band's power for an instant: RAM (authentication, PIN tokens) is lost, flash kept."""
    _act(sim_dir, serial, as_json, "power-cycle")


def _daemon_only(sim_dir: Path | None, serial: str, as_json: bool, action: str,
                 params: dict[str, Any]) -> None:
    from simulator.control import daemon_port, send_action

    fleet = _fleet(sim_dir)
    port = daemon_port(fleet.band_dir(serial))
    if port is None:
        raise PhysicalActionError(
            f"band {serial} is not running: start 'nymi-sim serve --band {serial}' with "
            "--vpcd or --ble first (this action needs a running band)")
    _report(send_action(port, action, params), as_json)


@app.command()
def tap(serial: Serial,
        slot: Annotated[int, typer.Option(min=0, max=9, help="vpcd reader slot.")] = 0,
        sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Put a running band on the virtual reader (it stays there until 'untap')."""
    _daemon_only(sim_dir, serial, as_json, "tap", {"slot": slot})


@app.command()
def move(serial: Serial,
         distance: Annotated[float, typer.Option("--distance", min=0.01, max=100.0,
                                                 help="Metres from the host's radio.")],
         sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Move a band served over BLE (its advertisements' RSSI follows the distance)."""
    _daemon_only(sim_dir, serial, as_json, "move", {"distance": distance})


@app.command()
def untap(serial: Serial, sim_dir: SimDir = None, as_json: Json = False) -> None:
    """Take a running band off the virtual reader."""
    _daemon_only(sim_dir, serial, as_json, "untap", {})


@nes_app.command("serve")
def nes_serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8080,
    layout: Annotated[str | None, typer.Option(
        help="single or it-ot (only when the site is created).")] = None,
    demo: Annotated[bool, typer.Option(
        "--demo", help="The site is a demonstration: serve it even though its directory "
        "accepts the published demo password.")] = False,
    sim_dir: SimDir = None,
) -> None:
    """Serve the fleet directory's NES site over HTTP (OpenAPI at /<server>/openapi.json).

    Refused while the site's directory accepts a password this project publishes (the demo's),
    unless --demo says the site is a demonstration."""
    from simulator.nes import open_site
    from simulator.nes.api import create_site_app, serve
    from simulator.nes.published import refuse_published_credentials

    with open_site(_fleet(sim_dir).root, layout=layout) as site:
        if not demo:
            refuse_published_credentials(site.directory)
        console.print(f"serving the {site.layout.value} NES site of {_fleet(sim_dir).root} on "
                      f"http://{host}:{port}/ (servers: {', '.join(site.servers)})"
                      + (" as a demonstration" if demo else ""), markup=False)
        serve(create_site_app(site), host=host, port=port)


@nes_app.command("set-password")
def nes_set_password(
    account: Annotated[str, typer.Argument(help="DOMAIN\\username (or a bare username).")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          confirmation_prompt=True,
                                          help="The new directory password.")],
    sim_dir: SimDir = None,
) -> None:
    """Give a directory user of the fleet directory's NES site a new password."""
    from simulator.nes import open_site

    with open_site(_fleet(sim_dir).root) as site:
        site.directory.set_password(account, password)
        console.print(f"password of {site.directory.get(account).account} changed",
                      markup=False)


@app.command()
def load(
    users: Annotated[int, typer.Option(min=1, help="Simulated users, each with its own band.")
                     ] = 4,
    seconds: Annotated[float, typer.Option(min=1, help="How long to run.")] = 30.0,
    workers: Annotated[int, typer.Option(
        min=0, help="Locust worker processes under a master (0: one process).")] = 0,
    host: Annotated[str | None, typer.Option(
        help="A running NES, e.g. http://127.0.0.1:8080/nes (its site must hold the load "
        "accounts); default: serve the fleet directory's site for the run.")] = None,
    database: Annotated[str | None, typer.Option(
        help="With a new site: its database URL (postgresql+psycopg://…; default SQLite).")
    ] = None,
    sim_dir: SimDir = None,
    as_json: Json = False,
) -> None:
    """Load the NES with simulated users running the band flows over HTTP (Locust)."""
    import contextlib
    import tempfile

    from simulator.load.runner import nes_server, prepare_site, run_locust

    root = _fleet(sim_dir).root
    with contextlib.ExitStack() as stack:
        if host is None:
            prepare_site(root, users=users, workers=workers, database=database)
            host = stack.enter_context(nes_server(root))
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="nymi-load-")))
        result = run_locust(host, scratch, users=users, seconds=seconds, workers=workers)
    if as_json:
        emit_json(result.to_dict())
        return
    console.print(f"{users} users, {workers or 'no'} workers, {seconds:g} s against {host}: "
                  f"{result.enrollments:.0f} enrollments ({result.enrollments_per_s:.2f}/s), "
                  f"{result.failures:.0f} failures", markup=False)
    table = Table("Flow", "Count", "Per s", "Median ms", "p95 ms", "p99 ms")
    for name, row in result.rows.items():
        table.add_row(name, f"{row['count']:.0f}", f"{row['per_s']:.2f}",
                      f"{row['median_ms']:.0f}", f"{row['p95_ms']:.0f}", f"{row['p99_ms']:.0f}")
    console.print(table)


plain_help(app)


def main(argv: list[str] | None = None) -> int:
    return run_app(app, "nymi-sim", argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
