"""``nymi-band nes …``: the NES Administrator Console's operations on the command line.

``--nes`` (on ``nymi-band``) names the server: nothing for the embedded default (the site in the
fleet directory), ``enrollment`` / ``registration`` in the IT/OT layout, or a database URL
(``sqlite:///path`` or ``postgresql://…``).

Commands that change something are an administrator's: on the embedded server they run as the
directory account in ``NYMI_NES_USER`` / ``NYMI_NES_PASSWORD``, which must be a member of
"NES Administrators", and the audit trail records that account; through the HTTP API the server
checks the same credentials. Each band action asks for confirmation (``--yes`` answers it).
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from nymi_device.cli_support import emit_json, human
from nymi_device.protocol.nes import NesRefusal, RefusalCode

if TYPE_CHECKING:
    from nymi_device.protocol.nes import NesService

from nymi_device.protocol.nes.directory import ADMIN_GROUP

nes_app = typer.Typer(help="The enterprise server (NES): users, bands, policies, EAM, audit.",
                      no_args_is_help=True)
user_app = typer.Typer(help="Users and their User Properties.", no_args_is_help=True)
policy_app = typer.Typer(help="Group and individual policies.", no_args_is_help=True)
band_app = typer.Typer(help="Bands: show, suspend, resume, disconnect, replace, temporary, "
                       "restore, reassign.", no_args_is_help=True)
eam_app = typer.Typer(help="The Evidian-style EAM registry.", no_args_is_help=True)
nes_app.add_typer(user_app, name="user")
nes_app.add_typer(policy_app, name="policy")
nes_app.add_typer(band_app, name="band")
nes_app.add_typer(eam_app, name="eam")
console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]
Yes = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]
Serial = Annotated[str, typer.Argument(help="The band's serial number, e.g. AAAH-00125.")]


@contextlib.contextmanager
def open_nes(ctx: typer.Context) -> Iterator[NesService]:
    """The server ``--nes`` names (:func:`hosttools.site.open_nes`): the flows sign in as their
    user; administrator commands over HTTP sign in with ``NYMI_NES_USER`` /
    ``NYMI_NES_PASSWORD`` (or the URL's ``CORP%5Cuser:password@``)."""
    from hosttools.site import open_nes as open_named

    opts = ctx.obj
    with open_named(getattr(opts, "sim_dir", None), getattr(opts, "nes", None),
                    user=getattr(opts, "nes_user", None),
                    password=getattr(opts, "nes_password", None)) as nes:
        yield nes


def admin_actor(ctx: typer.Context, nes: NesService) -> str:
    """The administrator a change is made by (see the module docstring)."""
    name = getattr(ctx.obj, "nes", None) or ""
    if name.startswith(("http://", "https://")):
        return "api"  # the server records the account that authenticated
    from hosttools.nes_http import (
        PASSWORD_ENV,
        USER_ENV,
        NesCredentialsRefused,
        NesCredentialsRequired,
    )

    user, password = os.environ.get(USER_ENV), os.environ.get(PASSWORD_ENV)
    if not user or password is None:
        raise NesCredentialsRequired(
            f"this change is an administrator's: set {USER_ENV} and {PASSWORD_ENV} to the "
            f'directory account of a member of "{ADMIN_GROUP}"')
    entry = nes.directory.authenticate(user, password)
    if entry is None:
        raise NesCredentialsRefused(f"{USER_ENV}={user}: unknown user or wrong password")
    if not entry.is_admin:
        raise NesRefusal(f'{entry.account} is not a member of "{ADMIN_GROUP}": only an '
                         "administrator may make this change", RefusalCode.POLICY,
                         account=entry.account)
    return entry.account


def confirm(question: str, yes: bool) -> None:
    """Ask before a band action; without a terminal, ``--yes`` is the answer."""
    if yes:
        return
    if not sys.stdin.isatty():
        raise typer.BadParameter(f"{question} Confirm with --yes.")
    if not typer.confirm(question, default=False):
        raise typer.Abort()


def user_properties(nes: NesService, name: str) -> dict[str, Any]:
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
        view = nes.update_policy(name, {option: parsed},
                                 actor=admin_actor(ctx, nes)).to_json()
    if as_json:
        emit_json(view)
    else:
        console.print(f"{name}: {option} = {value}")


def _band_show(nes: NesService, serial: str) -> dict[str, Any]:
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


def _band_action(ctx: typer.Context, question: str, yes: bool, as_json: bool,
                 action: Any) -> None:
    """Confirm, run ``action(nes, actor)`` (it returns the owner's account) and show the
    owner's User Properties afterwards."""
    with open_nes(ctx) as nes:
        actor = admin_actor(ctx, nes)
        confirm(question, yes)
        account = action(nes, actor)
        props = user_properties(nes, account)
    emit_json(props) if as_json else print_user_properties(props)


@band_app.command("suspend")
def band_suspend(ctx: typer.Context, serial: Serial,
                 notes: Annotated[str | None, typer.Option(help="Notes.")] = None,
                 yes: Yes = False, as_json: Json = False) -> None:
    """Suspend a band: clear Is Active, tick Is Primary (tap tasks stop; the band's own
    biometrics are unaffected)."""
    _band_action(ctx, f"Suspend {serial}?", yes, as_json, lambda nes, actor: nes.suspend(
        serial, notes=notes, actor=actor).account)


@band_app.command("resume")
def band_resume(ctx: typer.Context, serial: Serial, yes: Yes = False,
                as_json: Json = False) -> None:
    """Resume a suspended band: tick Is Active again (one active band per user)."""
    _band_action(ctx, f"Resume {serial}?", yes, as_json, lambda nes, actor: nes.update_band(
        serial, is_active=True, actor=actor).account)


@band_app.command("update")
def band_update(ctx: typer.Context, serial: Serial,
                active: Annotated[bool | None, typer.Option(
                    "--active/--no-active", help="Is Active.")] = None,
                primary: Annotated[bool | None, typer.Option(
                    "--primary/--no-primary", help="Is Primary.")] = None,
                notes: Annotated[str | None, typer.Option(help="Notes.")] = None,
                yes: Yes = False, as_json: Json = False) -> None:
    """The "Nymi Band" page: change Is Active, Is Primary or Notes and Save."""
    _band_action(ctx, f"Save the changes to {serial}?", yes, as_json,
                 lambda nes, actor: nes.update_band(serial, is_active=active,
                                                    is_primary=primary, notes=notes,
                                                    actor=actor).account)


@band_app.command("disconnect")
def band_disconnect(ctx: typer.Context, serial: Serial, yes: Yes = False,
                    as_json: Json = False) -> None:
    """Disconnect a band from its user (the association is deleted; audit is kept)."""
    _band_action(ctx, f"Disconnect {serial} from its user?", yes, as_json,
                 lambda nes, actor: nes.disconnect(serial, actor=actor).account)


@band_app.command("replace")
def band_replace(ctx: typer.Context, serial: Serial,
                 notes: Annotated[str, typer.Option(help="Notes.")] = "Lost Band",
                 yes: Yes = False, as_json: Json = False) -> None:
    """Replace a lost or broken band: clear Is Active and Is Primary; the band the user
    enrolls next becomes active and primary."""
    _band_action(ctx, f"Replace {serial} (lost or broken)?", yes, as_json,
                 lambda nes, actor: nes.replace_lost_band(serial, notes=notes,
                                                          actor=actor).account)


@band_app.command("temporary")
def band_temporary(ctx: typer.Context, serial: Serial,
                   notes: Annotated[str, typer.Option(help="Notes.")] = "Temporary band issued",
                   yes: Yes = False, as_json: Json = False) -> None:
    """Issue a temporary band: the original keeps Is Primary but is no longer active; the band
    the user enrolls next becomes active but not primary."""
    _band_action(ctx, f"Issue a temporary band in place of {serial}?", yes, as_json,
                 lambda nes, actor: nes.issue_temporary_band(serial, notes=notes,
                                                             actor=actor).account)


@band_app.command("restore")
def band_restore(ctx: typer.Context, serial: Serial, yes: Yes = False,
                 as_json: Json = False) -> None:
    """Restore the original band: disassociate the temporary band, reactivate ``serial``."""
    _band_action(ctx, f"Disassociate the temporary band and reactivate {serial}?", yes,
                 as_json, lambda nes, actor: nes.restore_original(serial, actor=actor).account)


@band_app.command("reassign")
def band_reassign(ctx: typer.Context, serial: Serial,
                  to: Annotated[str, typer.Option("--to", help="The new user (DOMAIN\\user).")],
                  yes: Yes = False, as_json: Json = False) -> None:
    """Reassign a band whose user data was deleted: disconnect it and record the new user's
    enrollment of it."""
    _band_action(ctx, f"Reassign {serial} to {to}?", yes, as_json,
                 lambda nes, actor: nes.reassign(serial, nes.resolve_account(to),
                                                 actor=actor).account)


@policy_app.command("self-service")
def policy_self_service(ctx: typer.Context,
                        name: Annotated[str, typer.Argument(help="The policy.")],
                        mode: Annotated[str, typer.Argument(
                            help="off, own (their own Nymi Band) or any (any active Nymi "
                            "Band).")],
                        as_json: Json = False) -> None:
    """Set the self-service re-enrollment options of a policy in one go."""
    from nymi_device.protocol.nes.policy import SELF_SERVICE_MODES, self_service_changes

    if mode not in SELF_SERVICE_MODES:
        raise typer.BadParameter(f"self-service is one of {', '.join(SELF_SERVICE_MODES)}")
    with open_nes(ctx) as nes:
        view = nes.update_policy(name, self_service_changes(mode),
                                 actor=admin_actor(ctx, nes)).to_json()
    emit_json(view) if as_json else console.print(f"{name}: self-service {mode}")


@user_app.command("policy")
def user_policy(ctx: typer.Context,
                name: Annotated[str, typer.Argument(help="DOMAIN\\username.")],
                policy: Annotated[str, typer.Argument(
                    help="An individual policy, or 'none' for the group policy.")],
                as_json: Json = False) -> None:
    """Set a user's Individual User Policy (the policy reaches the band at the next NBA
    sign-in: until then the policy status is Pending)."""
    with open_nes(ctx) as nes:
        actor = admin_actor(ctx, nes)
        account = nes.resolve_account(name)
        nes.set_individual_policy(account, None if policy.lower() == "none" else policy,
                                  actor=actor)
        props = user_properties(nes, account)
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
    """Blacklist an entry (an RFID or Wearable entry blacklists its partner too)."""
    with open_nes(ctx) as nes:
        rows = [e.to_json() for e in nes.eam_blacklist(entry_id, actor=admin_actor(ctx, nes))]
    emit_json(rows) if as_json else console.print(f"blacklisted {len(rows)} entries")


@eam_app.command("delete")
def eam_delete(ctx: typer.Context, entry_id: int, as_json: Json = False) -> None:
    """Delete a blacklisted entry (with its blacklisted RFID / Wearable partner)."""
    with open_nes(ctx) as nes:
        row = nes.eam_delete(entry_id, actor=admin_actor(ctx, nes)).to_json()
    emit_json(row) if as_json else console.print(f"deleted entry {entry_id}")


@nes_app.command("audit")
def audit(ctx: typer.Context,
          user: Annotated[str | None, typer.Option(help="Only this user's events.")] = None,
          table: Annotated[str | None, typer.Option(help="Only this table.")] = None,
          band: Annotated[str | None, typer.Option(help="Only this band's events.")] = None,
          limit: Annotated[int, typer.Option(min=1, help="Newest events.")] = 50,
          as_json: Json = False) -> None:
    """The audit trail (kept across Disconnect)."""
    with open_nes(ctx) as nes:
        account = nes.resolve_account(user) if user else None
        rows = [e.to_json() for e in nes.audit(table=table, account=account, key=band,
                                               limit=limit)]
    if as_json:
        emit_json(rows)
        return
    out = Table("At (UTC)", "Table", "Op", "Key", "Actor")
    for row in rows:
        out.add_row(row["at_utc"][:19], row["table"], row["op"], row["key"], row["actor"])
    console.print(out)
