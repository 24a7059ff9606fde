"""``nymi-band nes …``: the NES Administrator Console's operations on the command line.

``--nes`` (on ``nymi-band``) names the server: nothing for the embedded default (the site in the
fleet directory), ``enrollment`` / ``registration`` in the IT/OT layout, or a database URL
(``sqlite:///path`` or ``postgresql://…``).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from hosttools.site_cli import guarded_site
from nymi_device.cli_support import emit_json, human

if TYPE_CHECKING:
    from simulator.nes import Nes, Site

#: The directory group of NES administrators (the NES's own name for it).
ADMIN_GROUP = "NES Administrators"

nes_app = typer.Typer(help="The enterprise server (NES): users, bands, policies, EAM, audit.",
                      no_args_is_help=True)
user_app = typer.Typer(help="Users and their User Properties.", no_args_is_help=True)
policy_app = typer.Typer(help="Group and individual policies.", no_args_is_help=True)
band_app = typer.Typer(help="Bands: show, suspend, disconnect.", no_args_is_help=True)
eam_app = typer.Typer(help="The Evidian-style EAM registry.", no_args_is_help=True)
nes_app.add_typer(user_app, name="user")
nes_app.add_typer(policy_app, name="policy")
nes_app.add_typer(band_app, name="band")
nes_app.add_typer(eam_app, name="eam")
console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]


@contextlib.contextmanager
def open_nes_site(sim_dir: Path | None, server: str | None = None) -> Iterator[Site]:
    """The fleet's site; on a fleet without one, a failing command leaves none behind."""
    with guarded_site(sim_dir, server) as site:
        yield site


@contextlib.contextmanager
def open_nes(ctx: typer.Context) -> Iterator[Nes]:
    """The server ``--nes`` names (see the module docstring), or with ``http(s)://HOST:PORT/NAME``
    the NES behind that HTTP API (:class:`hosttools.remote_nes.RemoteNes`): the flows sign in as
    their user; administrator commands sign in with ``NYMI_NES_USER`` / ``NYMI_NES_PASSWORD``
    (or the URL's ``CORP%5Cuser:password@``)."""
    opts = ctx.obj
    name: str | None = getattr(opts, "nes", None)
    if name and name.startswith(("http://", "https://")):
        from hosttools.remote_nes import RemoteNes

        with RemoteNes.open(name, user=getattr(opts, "nes_user", None),
                            password=getattr(opts, "nes_password", None),
                            env=os.environ) as remote:
            yield remote.as_nes()
        return
    if name and "://" in name:
        from simulator.nes import Nes

        with Nes.open(name) as nes:
            yield nes
        return
    with open_nes_site(getattr(opts, "sim_dir", None), name) as site:
        yield site.server(name)


def user_properties(nes: Nes, name: str) -> dict[str, Any]:
    view = nes.user(nes.resolve_account(name))
    return {
        "account": view.account, "first_name": view.first_name, "last_name": view.last_name,
        "individual_policy": view.individual_policy_display,
        "policy_status": str(view.policy_status),
        "bands": [{"serial": b.serial, "is_active": b.is_active, "is_primary": b.is_primary,
                   "notes": b.notes, "created": b.created.date().isoformat()}
                  for b in view.bands],
    }


def print_user_properties(props: dict[str, Any]) -> None:
    console.print(f"[bold]User Properties: {escape(props['account'])}[/]  "
                  f"(Individual User Policy: {escape(props['individual_policy'])}, "
                  f"policy status: {escape(props['policy_status'])})")
    table = Table("Serial Number", "Is Active", "Is Primary", "Notes", "Created")
    for band in props["bands"]:
        table.add_row(band["serial"], "Active" if band["is_active"] else "",
                      "Primary" if band["is_primary"] else "", band["notes"], band["created"])
    console.print(table)


@user_app.command("add")
def user_add(
    ctx: typer.Context,
    account: Annotated[str, typer.Argument(help="CORP\\username (or a bare username).")],
    password: Annotated[str, typer.Option(prompt=True, hide_input=True,
                                          help="The directory password.")],
    first_name: Annotated[str, typer.Option(help="First name.")] = "",
    last_name: Annotated[str, typer.Option(help="Last name.")] = "",
    admin: Annotated[bool, typer.Option(help=f"Member of '{ADMIN_GROUP}'.")] = False,
    as_json: Json = False,
) -> None:
    """Add a user to the directory and the NES."""
    with open_nes(ctx) as nes:
        entry = nes.directory.add_user(account, password, first_name=first_name,
                                       last_name=last_name,
                                       groups=[ADMIN_GROUP] if admin else [])
        nes.ensure_user(entry.account)
        props = user_properties(nes, entry.account)
    if as_json:
        emit_json(props)
    else:
        print_user_properties(props)


@user_app.command("show")
def user_show(ctx: typer.Context,
              name: Annotated[str, typer.Argument(help="CORP\\username or a unique username.")],
              as_json: Json = False) -> None:
    """User Properties: the user's bands (Serial, Is Active, Is Primary, Notes, Created)."""
    with open_nes(ctx) as nes:
        props = user_properties(nes, name)
    if as_json:
        emit_json(props)
    else:
        print_user_properties(props)


@policy_app.command("show")
def policy_show(ctx: typer.Context,
                name: Annotated[str | None, typer.Argument(help="A policy; default: all.")]
                = None,
                as_json: Json = False) -> None:
    """Policies and their values."""
    with open_nes(ctx) as nes:
        views = [nes.policy(name)] if name else nes.policies()
        data = [v.to_json() for v in views]
    if as_json:
        emit_json(data)
        return
    for view in data:
        active = " (active)" if view.get("is_active") else ""
        console.print(f"[bold]{view['name']}[/] [{view['kind']}]{active}")
        for key, value in (view.get("values") or {}).items():
            console.print(f"  {key}: {human(value)}", markup=False)


@policy_app.command("set")
def policy_set(ctx: typer.Context,
               name: Annotated[str, typer.Argument(help="The policy.")],
               option: Annotated[str, typer.Argument(help="Setting name or option label.")],
               value: Annotated[str, typer.Argument(help="on/off, a number, or a value.")],
               as_json: Json = False) -> None:
    """Change one setting of a policy."""
    parsed: Any = {"on": True, "true": True, "yes": True, "off": False, "false": False,
                   "no": False}.get(value.lower(), value)
    if isinstance(parsed, str) and parsed.isdigit():
        parsed = int(parsed)
    with open_nes(ctx) as nes:
        view = nes.update_policy(name, {option: parsed}, actor="admin").to_json()
    if as_json:
        emit_json(view)
    else:
        console.print(f"{name}: {option} = {value}")


def _band_show(nes: Nes, serial: str) -> dict[str, Any]:
    return nes.band(serial).to_json()


@band_app.command("show")
def band_show(ctx: typer.Context, serial: str, as_json: Json = False) -> None:
    """The "Nymi Band" page of a band."""
    with open_nes(ctx) as nes:
        data = _band_show(nes, serial)
    if as_json:
        emit_json(data)
    else:
        for key, value in data.items():
            console.print(f"{key.replace('_', ' ')}: {human(value)}", markup=False)


@band_app.command("suspend")
def band_suspend(ctx: typer.Context, serial: str,
                 notes: Annotated[str | None, typer.Option(help="Notes.")] = None,
                 as_json: Json = False) -> None:
    """Suspend a band: clear Is Active (tap tasks stop; band biometrics unaffected)."""
    with open_nes(ctx) as nes:
        props = user_properties(nes, nes.suspend(serial, notes=notes, actor="admin").account)
    emit_json(props) if as_json else print_user_properties(props)


@band_app.command("disconnect")
def band_disconnect(ctx: typer.Context, serial: str, as_json: Json = False) -> None:
    """Disconnect a band from its user (the association is deleted; audit is kept)."""
    with open_nes(ctx) as nes:
        props = user_properties(nes, nes.disconnect(serial, actor="admin").account)
    emit_json(props) if as_json else print_user_properties(props)


@eam_app.command("show")
def eam_show(ctx: typer.Context, name: str, as_json: Json = False) -> None:
    """A user's RFID, Wearable and Smart Card entries."""
    with open_nes(ctx) as nes:
        rows = [e.to_json() for e in nes.eam_entries(nes.resolve_account(name))]
    if as_json:
        emit_json(rows)
        return
    table = Table("Id", "Kind", "Serial", "Identifier", "State")
    for row in rows:
        table.add_row(*(escape(human(row[k])) for k in ("id", "kind", "serial", "identifier",
                                                          "state")))
    console.print(table)


@eam_app.command("blacklist")
def eam_blacklist(ctx: typer.Context, entry_id: int, as_json: Json = False) -> None:
    """Blacklist an entry (the Wearable blacklists its RFID entry too)."""
    with open_nes(ctx) as nes:
        rows = [e.to_json() for e in nes.eam_blacklist(entry_id, actor="admin")]
    emit_json(rows) if as_json else console.print(f"blacklisted {len(rows)} entries")


@eam_app.command("delete")
def eam_delete(ctx: typer.Context, entry_id: int, as_json: Json = False) -> None:
    """Delete a blacklisted entry."""
    with open_nes(ctx) as nes:
        row = nes.eam_delete(entry_id, actor="admin").to_json()
    emit_json(row) if as_json else console.print(f"deleted entry {entry_id}")


@nes_app.command("audit")
def audit(ctx: typer.Context,
          user: Annotated[str | None, typer.Option(help="Only this user's events.")] = None,
          table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
          limit: Annotated[int, typer.Option(min=1, help="Newest events.")] = 50,
          as_json: Json = False) -> None:
    """The audit trail (kept across Disconnect)."""
    with open_nes(ctx) as nes:
        account = nes.resolve_account(user) if user else None
        rows = [e.to_json() for e in nes.audit(table=table, account=account, limit=limit)]
    if as_json:
        emit_json(rows)
        return
    out = Table("At (UTC)", "Table", "Op", "Key", "Actor")
    for row in rows:
        out.add_row(row["at_utc"][:19], row["table"], row["op"], row["key"], row["actor"])
    console.print(out)
