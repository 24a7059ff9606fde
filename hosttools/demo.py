"""``nymi-band demo``: a band's lifecycle played on the simulator, step by step."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from rich.console import Console

from nymi_device.protocol.model import Button
from simulator.band.band import EmulatedBand
from simulator.band.records import BandPolicy
from simulator.cli_common import emit_json
from simulator.fleet import Fleet, default_sim_dir

console = Console(highlight=False)


def run_demo(sim_dir: Path | None, serial: str, *, as_json: bool = False) -> list[dict[str, Any]]:
    """Create (or reuse) a Band 3.0, wear it, enroll it, then delete its user data."""
    fleet = Fleet(sim_dir or default_sim_dir())
    steps: list[dict[str, Any]] = []

    def step(title: str, band: EmulatedBand, since: int) -> None:
        band.settle()
        new = band.events[since:]
        record = {
            "step": title,
            "screens": [e.data["screen"] for e in new if e.kind == "screen"],
            "haptics": [e.data["pattern"] for e in new if e.kind == "haptic"],
            "screen": band.screen,
            "enrollment": band.enrollment.value,
            "auth": band.auth.value,
        }
        steps.append(record)
        if not as_json:
            shown = " -> ".join(f"'{s}'" for s in record["screens"]) or f"'{band.screen}'"
            buzz = f"  [magenta]vibrates {', '.join(record['haptics'])}[/]" if record[
                "haptics"] else ""
            console.print(f"[bold cyan]{len(steps):>2}.[/] {title}: screen {shown}{buzz}")

    if serial not in fleet.serials():
        fleet.add_band("nymi-band-3.0", serial)
        created = f"Created simulated Nymi Band 3.0 {serial} in {fleet.root}"
    else:
        created = f"Reusing simulated band {serial} in {fleet.root}"
    if not as_json:
        console.print(f"[bold]{created}[/]")

    with fleet.open_band(serial) as band:
        mark = len(band.events)
        if band.on_wrist:
            band.take_off()
        if band.on_charger:
            band.detach_charger()
        if band.battery_pct < 20:
            band.attach_charger()
            band.clock.advance(3600)
            band.detach_charger()
        step("Start: band off the wrist, off the charger", band, mark)

        mark = len(band.events)
        band.put_on()
        step(f"Wear the band (setup code {band.setup_code})", band, mark)
        if band.enrollment.value != "setup-code-shown":
            raise SystemExit("demo: the band did not reach the enrollment-ready screen")

        mark = len(band.events)
        band.enter_setup_code(band.setup_code or "")
        step("Type the setup code into the Nymi Band Application", band, mark)

        mark = len(band.events)
        band.start_capture()
        for _ in range(band.fixture.limits.enrollment_touches):
            band.place_finger(match=True)
            band.settle()
        step(f"Capture the fingerprint ({band.fixture.limits.enrollment_touches} touches)",
             band, mark)

        mark = len(band.events)
        band.set_label("tw-user2")
        band.apply_policy(BandPolicy(liveness=True, haptics=True))
        step("Band Label 'tw-user2' and policy applied", band, mark)

        mark = len(band.events)
        band.take_off()
        step("Take the band off the wrist", band, mark)

        mark = len(band.events)
        band.attach_charger()
        step("Put the band on its charger", band, mark)

        mark = len(band.events)
        band.hold(Button.BOTTOM, band.fixture.timing.wipe_hold_s)
        step("Hold the bottom button for 10 s (Delete User Data)", band, mark)

    if as_json:
        emit_json({"serial": serial, "sim_dir": str(fleet.root), "steps": steps})
    else:
        console.print(f"[bold green]Done.[/] {serial} is unenrolled and ready for a new user.")
    return steps
