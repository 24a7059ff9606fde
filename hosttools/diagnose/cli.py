"""``nymi-band diagnose``: what is wrong with a band, why, and what to do (docs/diagnose.md)."""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

    from hosttools.diagnose.collect import NesReader, Sources
from rich.console import Console

from nymi_device.backend import parse_target
from nymi_device.errors import InvalidInputError

console = Console(highlight=False)


def _ctap_opener(target: str, hci: str | None) -> Any:
    from nymi_device.fido import open_ctap_device

    @contextlib.contextmanager
    def opener() -> Iterator[CtapDevice]:
        options: dict[str, Any] = {"hci": hci} if hci and target.startswith("ble:") else {}
        if target.startswith("pcsc:"):
            options["timeout"] = 5
        device = open_ctap_device(target, **options)
        try:
            yield device
        finally:
            close = getattr(device, "close", None)
            if close is not None:
                close()
    return opener


def _simulated_opener(serial: str, sim_dir: Path | None) -> Any:
    @contextlib.contextmanager
    def opener() -> Iterator[CtapDevice]:
        # The simulated band's authenticator, however it is served (in-process, CTAPHID over
        # UDP, or NFC through pcscd), as the FIDO2 key flows reach it.
        from nymi_device.sync import SyncBand

        options: dict[str, Any] = {"sim_dir": sim_dir} if sim_dir else {}
        with SyncBand(f"sim:{serial}", **options) as band:
            device = band.fido2_device()
            try:
                yield device
            finally:
                device.close()
    return opener


def _fido2(sources: Sources, scheme: str, address: str, fido2: str | None,
           opts: Any) -> None:
    if fido2:
        sources.fido2, sources.fido2_source = _ctap_opener(fido2, opts.hci), fido2
    elif scheme in ("pcsc", "udp", "nfcpy"):
        sources.fido2, sources.fido2_source = _ctap_opener(sources.target, opts.hci), \
            sources.target
    elif scheme == "sim":
        sources.fido2 = _simulated_opener(address, opts.sim_dir)
        sources.fido2_source = f"{sources.target} (its authenticator, as served)"
    else:
        sources.fido2_missing = ("the band's FIDO2 authenticator is reached over NFC: give "
                                 "--fido2 pcsc:READER and tap the band")


def _server(sources: Sources, ctx: typer.Context) -> None:
    opts = ctx.obj

    @contextlib.contextmanager
    def opener() -> Iterator[NesReader]:
        from hosttools.nes_cli import open_nes

        with open_nes(ctx) as nes:
            yield nes
    sources.nes = opener
    name = getattr(opts, "nes", None)
    sources.nes_source = (f"NES {name}" if name
                          else f"embedded NES in {opts.sim_dir or './.nymi-sim'}")


def build_sources(ctx: typer.Context, *, user: str | None, events: int, scan: float | None,
                  nfc: str | None, fido2: str | None, no_server: bool) -> Sources:
    opts = ctx.obj
    target = opts.require_target()
    scheme, address = parse_target(target) if target.lower() != "pcsc:" else ("pcsc", "")
    from hosttools.diagnose.collect import Sources

    sources = Sources(target=target, user=user, events=events)
    if scheme in ("sim", "ble"):
        sources.band_options = opts.band_options()
    _fido2(sources, scheme, address, fido2, opts)
    if nfc is not None:
        sources.nfc_reader = nfc
    elif scheme == "pcsc":
        sources.nfc_reader = address
    scan_s = scan if scan is not None else (3.0 if scheme == "ble" else 0.0)
    sources.ble_scan_s, sources.ble_hci = scan_s, opts.hci
    if no_server:
        sources.nes_missing = "not asked (--no-server)"
    else:
        _server(sources, ctx)
    return sources


def register_diagnose_command(app: typer.Typer) -> None:
    @app.command("diagnose")
    def diagnose_cmd(
        ctx: typer.Context,
        user: Annotated[str | None, typer.Option(
            "--user", "-u", help="The user who reports the problem (DOMAIN\\username): "
            "checks whether they may enroll this band.")] = None,
        as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON "
                                              "(schema: --print-schema).")] = False,
        html: Annotated[Path | None, typer.Option(
            "--html", help="Also write a self-contained HTML report to this file.")] = None,
        bundle: Annotated[Path | None, typer.Option(
            "--bundle", help="Also write a zip for a support ticket: the JSON, the HTML and "
            "the raw traffic.")] = None,
        events: Annotated[int, typer.Option(min=0, help="How many recent band events.")] = 50,
        scan: Annotated[float | None, typer.Option(
            "--scan", min=0, help="Seconds of Bluetooth scanning for the band's RSSI "
            "(default 3 for ble: targets, else 0 = no scan).")] = None,
        nfc: Annotated[str | None, typer.Option(
            "--nfc", help="PC/SC reader (name substring) holding the band: reads its NFC "
            "identifier and applets.")] = None,
        fido2: Annotated[str | None, typer.Option(
            "--fido2", help="Where the band's FIDO2 authenticator answers (pcsc:READER, "
            "udp:HOST:PORT, ...), if not the target itself.")] = None,
        no_server: Annotated[bool, typer.Option(
            "--no-server", help="Do not ask the NES.")] = False,
        print_schema: Annotated[bool, typer.Option(
            "--print-schema", help="Print the JSON Schema of --json and exit.")] = False,
    ) -> None:
        """Diagnose a band: findings (what is wrong, why, the documented fix), then evidence.

        Exit codes: 0 no finding, 1 findings, 2 bad input, 3 the band could not be reached.
        """
        from hosttools.diagnose.bundle import write_bundle
        from hosttools.diagnose.collect import collect
        from hosttools.diagnose.render_html import render_html
        from hosttools.diagnose.render_json import SCHEMA, render_json
        from hosttools.diagnose.render_text import render_text
        from hosttools.diagnose.report import ExitCode, diagnose

        if print_schema:
            print(json.dumps(SCHEMA, indent=2))
            return
        for path in (html, bundle):
            if path is not None and not path.parent.is_dir():
                raise InvalidInputError(f"cannot write {path}: no directory {path.parent}")
        sources = build_sources(ctx, user=user, events=events, scan=scan, nfc=nfc,
                                fido2=fido2, no_server=no_server)
        diagnosis = diagnose(collect(sources))
        if as_json:
            print(render_json(diagnosis))
        else:
            render_text(diagnosis, console)
        if html is not None:
            html.write_text(render_html(diagnosis), encoding="utf-8")
            print(f"HTML report written to {html}", file=sys.stderr)
        if bundle is not None:
            write_bundle(diagnosis, bundle)
            print(f"Support bundle written to {bundle}", file=sys.stderr)
        if diagnosis.exit_code is not ExitCode.HEALTHY:
            raise typer.Exit(int(diagnosis.exit_code))
