"""Flows' wall time: enrollment, the self-service re-enrollment and Delete User Data.

The host flows drive a band of a fleet directory (durable flash, opened once for each flow and
held through the typed band contract, its world checkpointed after every step) against an
in-process NES on SQLite. The NES's share is the time inside its calls (a timing proxy around
it); the band's share (band model, flash, world checkpoints) is the rest. The target is the
whole re-enrollment under 0.2 s.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.core import Context, Figure, Suite, Target, Values

PASSWORD = "Passw0rd!"
OWN = "Allow a user to re-enroll / re-register their Nymi Band"


class TimedNes:
    """The NES with the time spent inside its calls added up."""

    def __init__(self, nes: Any, owner: TimedNes | None = None) -> None:
        self._nes = nes
        self._owner = owner
        self.seconds = 0.0

    def _add(self, seconds: float) -> None:
        if self._owner is not None:
            self._owner._add(seconds)
        else:
            self.seconds += seconds

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._nes, name)
        if name == "directory":
            return TimedNes(value, self)
        if not callable(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            started = time.perf_counter()
            try:
                return value(*args, **kwargs)
            finally:
                self._add(time.perf_counter() - started)

        return call


def _quiet(title: str, detail: dict[str, Any]) -> None:
    return None


def _timed(nes: TimedNes, fn: Callable[[], object]) -> tuple[float, float]:
    nes.seconds = 0.0
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started, nes.seconds


def measure(ctx: Context) -> Values:
    from hosttools.flows.delete_user_data import delete_user_data
    from hosttools.flows.enroll import enroll, reenroll
    from hosttools.site import open_flow_band
    from simulator.control import apply_action
    from simulator.fleet import Fleet
    from simulator.nes import DEFAULT_GROUP_POLICY, Directory, memory_site

    rounds = int(ctx.pick(1, 5))
    root = Path(tempfile.mkdtemp(dir=ctx.scratch))
    fleet = Fleet(root / "fleet")
    directory = Directory(scrypt_n=2**14)
    directory.add_user("CORP\\bench", PASSWORD)
    site = memory_site(directory=directory)
    site.enrollment.update_policy(DEFAULT_GROUP_POLICY, {OWN: True})
    nes = TimedNes(site.enrollment)
    samples: dict[str, list[tuple[float, float]]] = {"enroll": [], "reenroll": [], "dud": []}
    for index in range(rounds):
        serial = f"FLOW-{index:05d}"
        fleet.add_band("nymi-band-3.0", serial)
        target = f"sim:{serial}"

        def flow(run: Callable[[Any], object], target: str = target) -> None:
            with open_flow_band(target, sim_dir=fleet.root) as band:  # one flash open a flow
                run(band)

        samples["enroll"].append(_timed(nes, lambda: flow(lambda b: enroll(
            b, nes, "bench", PASSWORD, _quiet))))
        samples["reenroll"].append(_timed(nes, lambda: flow(lambda b: reenroll(
            b, nes, "bench", PASSWORD, _quiet))))
        for action in ("remove", "charge"):
            with fleet.open_band(serial) as held:
                apply_action(held, action, {})
        samples["dud"].append(_timed(nes, lambda: flow(lambda b: delete_user_data(b, _quiet))))
    site.close()
    values: Values = {}
    for name, runs in samples.items():
        best = min(runs)
        values[f"{name}_s"] = best[0]
        values[f"{name}_nes_s"] = best[1]
        values[f"{name}_band_s"] = best[0] - best[1]
    return values


def _figures() -> list[Figure]:
    figures = []
    for key, label, target in (("enroll", "enrollment", None),
                               ("reenroll", "self-service re-enrollment",
                                Target("<=", 0.2, "value")),
                               ("dud", "Delete User Data", Target("<=", 0.1, "value"))):
        figures += [
            Figure(f"{key}_s", f"{label}: whole flow", "s", target=target, digits=3),
            Figure(f"{key}_nes_s", f"{label}: in the NES (sign-in with scrypt included)", "s",
                   reference=f"{key}_s", digits=3),
            Figure(f"{key}_band_s", f"{label}: band model, flash and world saves", "s",
                   reference=f"{key}_s", digits=3),
        ]
    return figures


SUITE = Suite(
    name="flows",
    title="Flows: enrollment, self-service re-enrollment, Delete User Data",
    measure=measure,
    figures=_figures(),
    runs=1,
    prose=__doc__.split("\n\n", 1)[1] if __doc__ else "",
)
