"""``nymi-band demo``: the documented self-service re-enrollment, played on a simulated site.

The vendor's documented example: user tw-user2, enrolled to band AAAH-00125, performs a
self-service enrollment to band ACAK-00056, which belonged to another user, and re-creates the
FIDO2 security key on it.
Afterwards User Properties lists AAAH-00125 as not active but primary and ACAK-00056 as active.
The site stays in the fleet directory, so ``nymi-band nes user show tw-user2`` shows the outcome.
"""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from hosttools.flows.enroll import enroll, reenroll
from hosttools.flows.fido2_keys import create_key, verify_key
from hosttools.nes_cli import print_user_properties, user_properties
from hosttools.site import open_flow_band
from nymi_device.cli_support import emit_json
from nymi_device.errors import InvalidInputError
from simulator.fleet import Fleet, default_sim_dir
from simulator.nes import ADMIN_GROUP, DEFAULT_GROUP_POLICY, open_site
from simulator.nes.published import DEMO_ADMIN, DEMO_PASSWORD

console = Console(highlight=False)
DEMO_MARKER = ".demo-site"
USERS = {"CORP\\tw-user2": ("Tw", "User2"), "CORP\\tw-user1": ("Tw", "User1")}
PASSWORD = DEMO_PASSWORD
"""Published: ``nymi-sim nes serve`` refuses a site that accepts it unless told ``--demo``."""
BANDS = {"AAAH-00125": "nymi-band-3.0", "ACAK-00056": "nymi-band-3.0"}
RP_ID = "portal.example.com"


def _prepare(root: Path) -> None:
    """Start from a clean demo site; never overwrite a site the demo did not create."""
    nes_dir = root / "nes"
    if nes_dir.exists() and not (root / DEMO_MARKER).exists():
        raise InvalidInputError(
            f"{root} already holds an enterprise server the demo did not create; "
            "run the demo with another --sim-dir")
    shutil.rmtree(nes_dir, ignore_errors=True)
    for serial in BANDS:
        shutil.rmtree(root / "bands" / serial, ignore_errors=True)
    root.mkdir(parents=True, exist_ok=True)
    (root / DEMO_MARKER).write_text("created by nymi-band demo\n")


def run_demo(sim_dir: Path | None, *, as_json: bool = False) -> dict[str, Any]:
    root = sim_dir or default_sim_dir()
    _prepare(root)
    steps: list[dict[str, Any]] = []
    chapter = [""]

    def say(text: str) -> None:
        chapter[0] = text
        if not as_json:
            console.print(f"\n[bold]{text}[/]")

    def report(title: str, detail: dict[str, Any]) -> None:
        steps.append({"chapter": chapter[0], "step": title})
        if not as_json:
            console.print(f"  [cyan]•[/] {title}")

    say(f"Building a simulated site in {root}")
    fleet = Fleet(root)
    for serial, fixture in BANDS.items():
        fleet.add_band(fixture, serial)
        report(f"Band {serial} ({fixture}) created", {})
    with open_site(root) as site, contextlib.ExitStack() as stack:
        nes = site.server()
        for account, (first_name, last_name) in USERS.items():
            site.directory.add_user(account, PASSWORD, first_name=first_name,
                                    last_name=last_name)
            report(f"Directory user {account}", {})
        site.directory.add_user(DEMO_ADMIN, PASSWORD, groups=[ADMIN_GROUP])
        nes.update_policy(DEFAULT_GROUP_POLICY, {
            "Allow a user to re-enroll / re-register their Nymi Band": True,
            "Allow a user to re-enroll any active Nymi Band": True}, actor=DEMO_ADMIN)
        report(f"Policy '{DEFAULT_GROUP_POLICY}': self-service re-enrollment of own and any "
               "active band allowed", {})

        first = stack.enter_context(open_flow_band("sim:AAAH-00125", sim_dir=root))
        second = stack.enter_context(open_flow_band("sim:ACAK-00056", sim_dir=root))
        say("tw-user2 enrolls band AAAH-00125 and creates a FIDO2 security key")
        enroll(first, nes, "tw-user2", PASSWORD, report)
        create_key(first, nes, "tw-user2", RP_ID, report)

        say("tw-user1 enrolls band ACAK-00056")
        enroll(second, nes, "tw-user1", PASSWORD, report)

        say("tw-user2 forgot AAAH-00125 at home: self-service enrollment to ACAK-00056")
        reenroll(second, nes, "tw-user2", PASSWORD, report)

        say("tw-user2 re-creates the FIDO2 security key on the new band and signs in")
        create_key(second, nes, "tw-user2", RP_ID, report)
        verify_key(second, nes, "tw-user2", RP_ID, report)

        props = user_properties(nes, "tw-user2")
        former = user_properties(nes, "tw-user1")
    if as_json:
        emit_json({"sim_dir": str(root), "steps": steps, "user_properties": props,
                   "previous_owner": former})
    else:
        say("Result")
        print_user_properties(props)
        console.print(f"tw-user1's bands: "
                      f"{', '.join(b['serial'] for b in former['bands']) or 'none'}")
        console.print(f"\nThe site stays in {root}: try "
                      "[bold]nymi-band nes user show tw-user2[/] (every demo user's password is "
                      f"'{PASSWORD}')")
    return {"steps": steps, "user_properties": props}
