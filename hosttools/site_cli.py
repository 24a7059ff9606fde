"""``nymi-band nes site …``: a site without a server (the wiring is :mod:`hosttools.site`).

A site is the enterprise server(s) of a fleet directory (``<fleet>/nes``): one NES (the
``single`` layout) or an Enrollment NES and a Registration NES (the ``it-ot`` layout), each with
its own database, sharing one directory of users. ``nes site create`` makes one from the command
line; ``nes site show`` says which exists.

"""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console

from nymi_device.cli_support import emit_json

__all__ = ["site_app"]

site_app = typer.Typer(help="The fleet's NES site: create a single or IT/OT site, show it.",
                       no_args_is_help=True)
console = Console(highlight=False)
Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON.")]

@site_app.command("create")
def site_create(
    ctx: typer.Context,
    layout: Annotated[str, typer.Option(
        "--layout", help="single (one NES) or it-ot (an Enrollment NES on the IT network and a "
        "Registration NES on the OT network).")] = "single",
    as_json: Json = False,
) -> None:
    """Create the fleet's NES site (its databases and directory) without a server."""
    from hosttools.site import create_site, fleet_root

    data = create_site(fleet_root(getattr(ctx.obj, "sim_dir", None)), layout)
    root = data["root"]
    if as_json:
        emit_json(data)
    else:
        console.print(f"Created the {data['layout']} NES site in {root} (servers: "
                      f"{', '.join(data['servers'])}).", markup=False)


@site_app.command("show")
def site_show(ctx: typer.Context, as_json: Json = False) -> None:
    """The fleet's NES site: layout, servers, users (creates nothing)."""
    from hosttools.site import describe_site, fleet_root

    root = fleet_root(getattr(ctx.obj, "sim_dir", None))
    data = describe_site(root)
    if as_json:
        emit_json(data)
    else:
        console.print(f"{data['layout']} NES site in {root}: servers "
                      f"{', '.join(data['servers'])}, {data['users']} users", markup=False)
