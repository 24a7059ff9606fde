"""``nymi-band``: what support engineers and integrators run against real or simulated bands.

Start-up stays fast: this module and the command modules it registers import only typer, rich
and the light parts of :mod:`nymi_device`; each command imports its transport, the simulator or
the enterprise server when it runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, cast

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hosttools.diagnose.cli import register_diagnose_command
from hosttools.fido2_cli import fido2_app
from hosttools.flow_cli import register_flow_commands
from hosttools.nes_cli import nes_app
from hosttools.nfc_cli import nfc_app
from hosttools.sign_in import register_sign_in
from hosttools.site_cli import site_app
from hosttools.watch import register_ble_commands
from nymi_device.cli_support import (
    LogFileOption,
    LogLevelOption,
    VerboseOption,
    VersionOption,
    configure_logging,
    emit_json,
    human,
    plain_help,
    run_app,
)

if TYPE_CHECKING:
    from hosttools.site import OperatorChoice

CONTEXT = {"help_option_names": ["-h", "--help"]}

app = typer.Typer(
    help="Talk to Nymi bands: identity, status, management and FIDO2.",
    no_args_is_help=True,
    context_settings=CONTEXT,
    pretty_exceptions_enable=False,
)
app.add_typer(fido2_app, name="fido2")
app.add_typer(nes_app, name="nes")
nes_app.add_typer(site_app, name="site")
app.add_typer(nfc_app, name="nfc")
register_flow_commands(app, fido2_app)
register_sign_in(app)
register_ble_commands(app, lambda ctx: ctx.obj)
register_diagnose_command(app)
plain_help(app)
console = Console(highlight=False)

Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


class Options:
    def __init__(self, target: str | None, sim_dir: Path | None, nes: str | None = None,
                 hci: str | None = None, operator: OperatorChoice = "auto",
                 fido2: str | None = None, step_timeout: float | None = None) -> None:
        self.target = target
        self.sim_dir = sim_dir
        self.nes = nes
        self.hci = hci
        self.operator: OperatorChoice = operator
        self.fido2 = fido2
        self.step_timeout = step_timeout

    def band_options(self) -> dict[str, Any]:
        if self.target and self.target.lower().startswith("ble:"):
            from hosttools.site import ble_target_options

            return ble_target_options(self.target[4:], self.hci, self.sim_dir)
        return {"sim_dir": self.sim_dir} if self.sim_dir else {}

    def require_target(self) -> str:
        if not self.target:
            raise typer.BadParameter("this command needs --target (e.g. --target sim:AAAH-00125)")
        return self.target


@app.callback()
def main_options(
    ctx: typer.Context,
    target: Annotated[str | None, typer.Option(
        "--target", "-t", envvar="NYMI_TARGET",
        help="The band: sim:SERIAL (simulated), ble:ADDRESS (Bluetooth LE), pcsc:READER (FIDO2 "
        "over NFC; pcsc: alone = the first reader holding a band), udp:HOST:PORT or "
        "udp:HOST:PORT/REPLYPORT (CTAPHID over UDP, answered on REPLYPORT, default 7112), "
        "nfcpy:PATH.")] = None,
    sim_dir: Annotated[Path | None, typer.Option(
        "--sim-dir", envvar="NYMI_SIM_DIR",
        help="Fleet directory of simulated bands (default ./.nymi-sim).")] = None,
    nes: Annotated[str | None, typer.Option(
        "--nes", envvar="NYMI_NES",
        help="The NES: embedded default, 'enrollment' / 'registration' (IT/OT), a database "
        "URL, or the HTTP API's URL.")] = None,
    hci: Annotated[str | None, typer.Option(
        "--hci", envvar="NYMI_BLE_HCI",
        help="The Bluetooth radio for ble: targets, as a Bumble transport moniker "
        "(tcp-client:127.0.0.1:PORT for the simulator, usb:0 for a dongle); default: the OS "
        "stack.")] = None,
    operator: Annotated[str, typer.Option(
        "--operator", envvar="NYMI_OPERATOR",
        help="Who does the physical steps of a flow: 'sim' (the simulator's control API), "
        "'console' (a person, prompted on stderr; the band's events confirm each step), or "
        "'auto' (sim for simulated bands, console for real ones).")] = "auto",
    fido2: Annotated[str | None, typer.Option(
        "--fido2", envvar="NYMI_FIDO2",
        help="Where a real band's FIDO2 authenticator is reached for the flows "
        "(e.g. pcsc: for the first reader holding it).")] = None,
    step_timeout: Annotated[float | None, typer.Option(
        "--step-timeout", min=0.1, max=3600, envvar="NYMI_STEP_TIMEOUT",
        help="Seconds a person has for each physical step before the flow fails "
        "(console operator; default 120).")] = None,
    verbose: VerboseOption = 0,
    log_level: LogLevelOption = None,
    log_file: LogFileOption = None,
    version: VersionOption = False,
) -> None:
    configure_logging(verbose, log_level, log_file)
    if operator not in ("auto", "sim", "console"):
        raise typer.BadParameter(f"--operator is auto, sim or console, not {operator!r}")
    ctx.obj = Options(target, sim_dir, nes, hci, cast("OperatorChoice", operator), fido2,
                      step_timeout)


def _table(title: str, rows: dict[str, Any]) -> Table:
    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key.replace("_", " "), escape(human(value)))
    return table


def _surface(opts: Options, target: str) -> dict[str, Any]:
    """``info`` / ``status`` of a target that reaches only the band's FIDO2 authenticator."""
    from hosttools.targets import fido2_surface, open_fido2_device

    with open_fido2_device(target, hci=opts.hci) as device:
        return fido2_surface(device, target)


def _show_surface(data: dict[str, Any], as_json: bool) -> None:
    if as_json:
        emit_json(data)
        return
    console.print(_table(f"FIDO2 authenticator at {data['target']}", data))
    console.print("(this target reaches only the band's FIDO2 authenticator; its screen, wrist "
                  "and enrollment need a sim: or ble: target)")


@app.command()
def info(ctx: typer.Context, as_json: Json = False) -> None:
    """Identity and capabilities of a band (on FIDO2-only targets: what getInfo offers)."""
    from hosttools.targets import BAND_SCHEMES, FIDO2_SCHEMES, require_scheme

    opts: Options = ctx.obj
    target = opts.require_target()
    if require_scheme(target, "info", BAND_SCHEMES + FIDO2_SCHEMES) in FIDO2_SCHEMES:
        _show_surface(_surface(opts, target), as_json)
        return
    from nymi_device.band import Band

    async def go() -> dict[str, Any]:
        async with Band.from_target(target, **opts.band_options()) as band:
            return (await band.info()).to_dict()

    import asyncio

    data = asyncio.run(go())
    if as_json:
        emit_json(data)
    else:
        console.print(_table(f"Band {data['serial']}", data))


@app.command()
def status(
    ctx: typer.Context,
    events: Annotated[int, typer.Option(min=0, help="Also show this many recent events.")] = 0,
    as_json: Json = False,
) -> None:
    """The band's present state: power, wrist, charger, battery, screen, enrollment, auth
    (on FIDO2-only targets: whether the authenticator answers, and what it offers)."""
    from hosttools.targets import BAND_SCHEMES, FIDO2_SCHEMES, require_scheme

    opts: Options = ctx.obj
    target = opts.require_target()
    if require_scheme(target, "status", BAND_SCHEMES + FIDO2_SCHEMES) in FIDO2_SCHEMES:
        _show_surface({"answers": True, **_surface(opts, target)}, as_json)
        return
    from nymi_device.band import Band

    async def go() -> dict[str, Any]:
        async with Band.from_target(target, **opts.band_options()) as band:
            data = (await band.status()).to_dict()
            if events:
                data["events"] = [e.to_dict() for e in await band.recent_events(events)]
            return data

    import asyncio

    data = asyncio.run(go())
    if as_json:
        emit_json(data)
        return
    recent = data.pop("events", [])
    console.print(_table(f"Band {data['serial']} status", data))
    if recent:
        console.print(render_events(recent))


def render_events(events: list[dict[str, Any]]) -> Table:
    """Band events with the band's own time and the UTC wall time it emitted them at."""
    table = Table("UTC", "Band time", "Event", "Detail", title="Recent events",
                  title_justify="left")
    for event in events:
        wall = event.get("utc")
        table.add_row(escape(str(wall).replace("+00:00", "Z")) if wall else "—",
                      f"{event['time']:.3f} s", escape(str(event["kind"])),
                      escape(human(event["data"])))
    return table


@app.command()
def demo(ctx: typer.Context, as_json: Json = False) -> None:
    """Play the vendor's documented self-service re-enrollment on a simulated site."""
    from hosttools.demo import run_demo

    opts: Options = ctx.obj
    run_demo(opts.sim_dir, as_json=as_json)


def main(argv: list[str] | None = None) -> int:
    return run_app(app, "nymi-band", argv)


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
