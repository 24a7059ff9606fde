"""``nymi-band nes site …``: a site without a server, and opening one without side effects.

A site is the enterprise server(s) of a fleet directory (``<fleet>/nes``): one NES (the
``single`` layout) or an Enrollment NES and a Registration NES (the ``it-ot`` layout), each with
its own database, sharing one directory of users. ``nes site create`` makes one from the command
line; ``nes site show`` says which exists.

:func:`guarded_site` opens the site of a fleet directory for one command: a command that fails
on a fleet that had no site leaves no site behind, and a server name the site would not have is
refused before anything is written.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

from nymi_device.cli_support import emit_json
from nymi_device.errors import InvalidInputError

if TYPE_CHECKING:
    from simulator.nes import Site

__all__ = ["LAYOUTS", "guarded_site", "site_app", "site_exists"]

site_app = typer.Typer(help="The fleet's NES site: create a single or IT/OT site, show it.",
                       no_args_is_help=True)
console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

#: layout → the names of its servers.
LAYOUTS = {"single": ("nes",), "it-ot": ("enrollment", "registration")}
_SITE_FILE = Path("nes") / "site.json"


def _root(sim_dir: Path | None) -> Path:
    from simulator.fleet import default_sim_dir

    return sim_dir or default_sim_dir()


def site_exists(root: Path) -> bool:
    return (root / _SITE_FILE).is_file()


@contextlib.contextmanager
def guarded_site(sim_dir: Path | None, server: str | None = None,
                 layout: str | None = None) -> Iterator[Site]:
    """The site of the fleet directory, created (``layout``, default single) if there is none.

    If there was none and the command fails, the site it created is removed again; a ``server``
    the new site would not have is refused before anything is written.
    """
    root = _root(sim_dir)
    fresh = not site_exists(root)
    if fresh:
        servers = LAYOUTS[layout or "single"]
        if server is not None and server not in servers and "://" not in server:
            other = next((name for name, names in LAYOUTS.items() if server in names), None)
            hint = (f"create it with 'nymi-band nes site create --layout {other}'" if other
                    else f"the {layout or 'single'} layout has {', '.join(servers)}")
            raise InvalidInputError(f"there is no NES site in {root} with a server "
                                    f"{server!r}: {hint}")
    nes_dir = root / "nes"
    created_dir = fresh and not nes_dir.exists()
    from simulator.nes import open_site

    try:
        with open_site(root, layout=layout) as site:
            yield site
    except BaseException:
        if fresh and created_dir:
            shutil.rmtree(nes_dir, ignore_errors=True)
        elif fresh:
            (root / _SITE_FILE).unlink(missing_ok=True)
        raise


def _describe(site: Site, root: Path) -> dict[str, Any]:
    return {"root": str(root), "layout": site.layout.value,
            "servers": sorted(site.servers), "users": len(site.directory.users())}


@site_app.command("create")
def site_create(
    ctx: typer.Context,
    layout: Annotated[str, typer.Option(
        "--layout", help="single (one NES) or it-ot (an Enrollment NES on the IT network and a "
        "Registration NES on the OT network).")] = "single",
    as_json: Json = False,
) -> None:
    """Create the fleet's NES site (its databases and directory) without a server."""
    if layout not in LAYOUTS:
        raise InvalidInputError(f"--layout is single or it-ot, not {layout!r}")
    root = _root(getattr(ctx.obj, "sim_dir", None))
    if site_exists(root):
        from simulator.nes import open_site

        with open_site(root) as existing:
            raise InvalidInputError(
                f"{root} already has a {existing.layout.value} NES site (servers: "
                f"{', '.join(sorted(existing.servers))}); use another --sim-dir")
    with guarded_site(root, layout=layout) as site:
        data = _describe(site, root)
    if as_json:
        emit_json(data)
    else:
        console.print(f"Created the {data['layout']} NES site in {root} (servers: "
                      f"{', '.join(data['servers'])}).", markup=False)


@site_app.command("show")
def site_show(ctx: typer.Context, as_json: Json = False) -> None:
    """The fleet's NES site: layout, servers, users (creates nothing)."""
    root = _root(getattr(ctx.obj, "sim_dir", None))
    if not site_exists(root):
        raise InvalidInputError(f"there is no NES site in {root}: create one with "
                                "'nymi-band nes site create [--layout it-ot]'")
    from simulator.nes import open_site

    with open_site(root) as site:
        data = _describe(site, root)
    if as_json:
        emit_json(data)
    else:
        console.print(f"{data['layout']} NES site in {root}: servers "
                      f"{', '.join(data['servers'])}, {data['users']} users", markup=False)
