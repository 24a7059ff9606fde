"""The flow commands of ``nymi-band``: delete-user-data, enroll, register, reenroll, fido2 keys.

Each prints its steps as they happen (or, with ``--json``, the result at the end). The physical
steps go through an operator: on simulated bands the simulator's control API, on real bands a
person prompted on stderr; each counts only once the band's own events (or, where a band has
none, the person typing what it shows) confirm it. Steps that need the vendor's enrollment
channel say so and stop.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from hosttools.nes_cli import open_nes, print_user_properties, user_properties
from nymi_device.cli_support import emit_json
from nymi_device.errors import InvalidInputError

if TYPE_CHECKING:
    from hosttools.flows.bands import FlowBand

console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
User = Annotated[str, typer.Option("--user", "-u",
                                   help="CORP\\username (or a bare username).")]
Password = Annotated[str, typer.Option(prompt=True, hide_input=True, envvar="NYMI_PASSWORD",
                                       help="The user's directory password.")]


def flow_band(ctx: typer.Context) -> FlowBand:
    """The band ``--target`` names, opened once for the command, with its operator."""
    from hosttools.site import open_flow_band
    from hosttools.targets import BAND_SCHEMES, require_scheme

    opts = ctx.obj
    command = ctx.command_path.split(" ", 1)[-1]
    require_scheme(opts.require_target(), command, BAND_SCHEMES)
    band = open_flow_band(opts.require_target(), sim_dir=opts.sim_dir, hci=opts.hci,
                          operator=opts.operator, fido2=opts.fido2, timeout=opts.step_timeout)
    ctx.call_on_close(band.close)
    return band


def reporter(as_json: bool) -> Any:
    def report(title: str, detail: dict[str, Any]) -> None:
        if not as_json:
            console.print(f"  [cyan]•[/] {title}")
    return report


def register_flow_commands(app: typer.Typer, fido2_app: typer.Typer) -> None:
    @app.command("delete-user-data")
    def delete_user_data_cmd(ctx: typer.Context, as_json: Json = False) -> None:
        """Delete User Data (Band 3.0) or the security wipe (Band 2.0) on the charger."""
        from hosttools.flows.delete_user_data import delete_user_data

        result = delete_user_data(flow_band(ctx), reporter(as_json))
        if as_json:
            emit_json(result.to_dict())
        else:
            console.print(f"[green]User data deleted from {result.serial}.[/] The NES still "
                          "links the band to its user until an administrator disconnects it.")

    @app.command("enroll")
    def enroll_cmd(ctx: typer.Context, user: User, password: Password,
                   label: Annotated[str | None, typer.Option(help="Custom Band Label.")] = None,
                   as_json: Json = False) -> None:
        """Enroll the band to a user, as the Nymi Band Application does."""
        from hosttools.flows.enroll import enroll

        band = flow_band(ctx)
        with open_nes(ctx) as nes:
            result = enroll(band, nes, user, password, reporter(as_json), label=label)
            _finish(result.to_dict(), nes, result.account, result.repaired, as_json)

    @app.command("register")
    def register_cmd(ctx: typer.Context, user: User, password: Password,
                     as_json: Json = False) -> None:
        """Record the enrolled band for the user at the Registration NES (IT/OT)."""
        from hosttools.flows.enroll import register

        band = flow_band(ctx)
        from hosttools.site import open_site_servers

        with open_site_servers(ctx.obj.sim_dir, ctx.obj.nes) as site:
            registration = site.named if ctx.obj.nes else site.registration
            if registration is None:
                raise InvalidInputError("this site has one NES: registration is part of "
                                        "enrollment (create the site with the it-ot layout)")
            result = register(band, registration, user, password, reporter(as_json),
                              enrolled_at=site.enrollment.name)
            _finish(result.to_dict(), registration, result.account, [], as_json)

    @app.command("reenroll")
    def reenroll_cmd(ctx: typer.Context, user: User, password: Password,
                     label: Annotated[str | None, typer.Option(help="Custom Band Label.")] = None,
                     as_json: Json = False) -> None:
        """Self-service re-enrollment: Delete User Data, then enroll (and register, IT/OT)."""
        from hosttools.flows.enroll import reenroll

        band = flow_band(ctx)
        if ctx.obj.nes and "://" in ctx.obj.nes:
            with open_nes(ctx) as nes:
                result = reenroll(band, nes, user, password, reporter(as_json), label=label)
                _finish(result.to_dict(), nes, result.account, result.repaired, as_json)
            return
        from hosttools.site import open_site_servers

        with open_site_servers(ctx.obj.sim_dir, ctx.obj.nes) as site:
            nes = site.named
            result = reenroll(band, nes, user, password, reporter(as_json), label=label,
                              registration=site.registration)
            _finish(result.to_dict(), nes, result.account, result.repaired, as_json)

    @fido2_app.command("create-key")
    def create_key_cmd(ctx: typer.Context, user: User, password: Password,
                       rp: Annotated[str, typer.Option("--rp", help="Relying party id.")],
                       as_json: Json = False) -> None:
        """Create the user's FIDO2 security key on the band and record it in the NES."""
        from hosttools.flows.enroll import sign_in
        from hosttools.flows.fido2_keys import check_key_band, create_key

        band = flow_band(ctx)
        check_key_band(band)  # before anyone signs in
        with open_nes(ctx) as nes:
            account = sign_in(nes, user, password)
            result = create_key(band, nes, account, rp, reporter(as_json))
        emit_json(result.to_dict()) if as_json else console.print(
            f"[green]Security key for {rp} created on {band.serial}.[/]")

    @fido2_app.command("verify")
    def verify_cmd(ctx: typer.Context, user: User, password: Password,
                   rp: Annotated[str, typer.Option("--rp", help="Relying party id.")],
                   as_json: Json = False) -> None:
        """Sign in to the relying party with the user's key on the band."""
        from hosttools.flows.enroll import sign_in
        from hosttools.flows.fido2_keys import check_key_band, verify_key

        band = flow_band(ctx)
        check_key_band(band)  # before anyone signs in
        with open_nes(ctx) as nes:
            account = sign_in(nes, user, password)
            result = verify_key(band, nes, account, rp, reporter(as_json))
        emit_json(result.to_dict()) if as_json else console.print(
            f"[green]Signed in to {rp}[/] (signature counter {result.sign_count}).")

    @fido2_app.command("list")
    def list_cmd(ctx: typer.Context,
                 user: Annotated[str | None, typer.Option("--user", "-u")] = None,
                 as_json: Json = False) -> None:
        """FIDO2 security keys the NES records (per user and band)."""
        with open_nes(ctx) as nes:
            account = nes.resolve_account(user) if user else None
            rows = [k.to_json() for k in nes.fido2_keys(account)]
        if as_json:
            emit_json(rows)
            return
        for row in rows:
            console.print(f"{row['account']}  {row['serial']}  {row['rp_id']}  "
                          f"{row['credential_id']}  {row['created'][:10]}", markup=False,
                          soft_wrap=True)


def _finish(result: dict[str, Any], nes: Any, account: str, repaired: list[str],
            as_json: bool) -> None:
    if as_json:
        emit_json(result)
        return
    for line in repaired:
        console.print(f"[yellow]Repaired:[/] {line}")
    print_user_properties(user_properties(nes, account))
