"""Flash opens per flow: one enrollment and one self-service re-enrollment on a simulated band
(nymi-band-3.0, embedded NES), counting how often the band's flash is opened and its world file
rewritten, beside the storage floor (one atomic, fsync'd 1 KiB file replace) in the same run.

Before, each step of a flow reopened the band: 19 opens and 19 world writes per enrollment, 26
and 26 per re-enrollment (measured on the previous release with the same code). Now a flow holds
the band open and checkpoints its world (not fsync'd) after each step; the flash stays the truth.
"""

from __future__ import annotations

import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import simulator.fleet as fleet_module
from bench.core import Context, Figure, Suite, Target, Values
from hosttools.flows.bands import quiet
from hosttools.flows.enroll import enroll, reenroll
from hosttools.site import open_flow_band
from simulator.band.storage import FlashStorage, atomic_write
from simulator.fleet import Fleet
from simulator.nes import DEFAULT_GROUP_POLICY, memory_site

ROUNDS = 15
PASSWORD = "bench-password"
SELF_SERVICE = {"Allow a user to re-enroll / re-register their Nymi Band": True,
                "Allow a user to re-enroll any active Nymi Band": True}


class Counts:
    """Counts flash opens and world.json rewrites while installed."""

    def __init__(self) -> None:
        self.opens = 0
        self.worlds = 0
        self._open = FlashStorage.open.__func__  # type: ignore[attr-defined]
        self._write: Callable[..., None] = getattr(fleet_module, "atomic_write")  # noqa: B009

    def install(self) -> None:
        counts, real_open, real_write = self, self._open, self._write

        def counting_open(cls: type[FlashStorage], *args: Any, **kwargs: Any) -> FlashStorage:
            counts.opens += 1
            return real_open(cls, *args, **kwargs)  # type: ignore[no-any-return]

        def counting_write(path: Path, data: bytes, **kwargs: Any) -> None:
            if path.name == "world.json":
                counts.worlds += 1
            real_write(path, data, **kwargs)

        FlashStorage.open = classmethod(counting_open)  # type: ignore[assignment,method-assign]
        setattr(fleet_module, "atomic_write", counting_write)  # noqa: B010

    def uninstall(self) -> None:
        FlashStorage.open = classmethod(self._open)  # type: ignore[assignment,method-assign]
        setattr(fleet_module, "atomic_write", self._write)  # noqa: B010

    def reset(self) -> tuple[int, int]:
        seen = (self.opens, self.worlds)
        self.opens = self.worlds = 0
        return seen


def _site(root: Path) -> tuple[Any, Fleet]:
    fleet = Fleet(root / "fleet", durable=False)
    for serial in ("AAAH-00125", "ACAK-00056"):
        fleet.add_band("nymi-band-3.0", serial)
    site = memory_site()
    for user in ("CORP\\tw-user1", "CORP\\tw-user2"):
        site.directory.add_user(user, PASSWORD)
    site.server().update_policy(DEFAULT_GROUP_POLICY, SELF_SERVICE)
    return site, fleet


def _timed(run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return (time.perf_counter() - start) * 1000


def _round(root: Path, counts: Counts) -> dict[str, tuple[float, int, int]]:
    """One enrollment and one re-enrollment on a fresh site: (ms, flash opens, world writes)."""
    site, fleet = _site(root)
    nes = site.server()
    with open_flow_band("sim:AAAH-00125", sim_dir=fleet.root) as first:
        enroll(first, nes, "tw-user2", PASSWORD, quiet)
    counts.reset()

    def one_enroll() -> None:
        with open_flow_band("sim:ACAK-00056", sim_dir=fleet.root) as band:
            enroll(band, nes, "tw-user1", PASSWORD, quiet)

    def one_reenroll() -> None:
        with open_flow_band("sim:ACAK-00056", sim_dir=fleet.root) as band:
            reenroll(band, nes, "tw-user2", PASSWORD, quiet)

    out = {}
    for name, run in (("enroll", one_enroll), ("reenroll", one_reenroll)):
        ms = _timed(run)
        out[name] = (ms, *counts.reset())
    site.close()
    return out


def measure(ctx: Context) -> Values:
    counts = Counts()
    counts.install()
    samples: dict[str, list[float]] = {"enroll": [], "reenroll": []}
    values: Values = {}
    floor: list[float] = []
    try:
        for _ in range(int(ctx.pick(2, ROUNDS))):
            root = Path(tempfile.mkdtemp(dir=ctx.scratch))
            try:
                target = root / "floor.bin"
                floor.append(_timed(lambda: atomic_write(target, b"x" * 1024)))  # noqa: B023
                for name, (ms, opens, worlds) in _round(root, counts).items():
                    samples[name].append(ms)
                    values[f"{name}_opens"], values[f"{name}_worlds"] = opens, worlds
            finally:
                shutil.rmtree(root, ignore_errors=True)
    finally:
        counts.uninstall()
    values["floor"] = statistics.median(floor)
    for name, times in samples.items():
        values[f"{name}_ms"] = statistics.median(times)
    return values


def _figures() -> list[Figure]:
    figures = [Figure("floor", "atomic 1 KiB replace + fsync (floor)", "ms", digits=2)]
    for key, name in (("enroll", "enrollment"), ("reenroll", "self-service re-enrollment")):
        figures += [
            Figure(f"{key}_ms", f"{name}: whole flow", "ms", reference="floor"),
            Figure(f"{key}_opens", f"{name}: flash opens", "", target=Target("<=", 1, "value"),
                   digits=0),
            Figure(f"{key}_worlds", f"{name}: world file writes", "", digits=0),
        ]
    return figures


SUITE = Suite(
    name="flash_opens",
    title="Flash opens per flow",
    measure=measure,
    figures=_figures(),
    runs=1,
    prose=__doc__.split("\n\n", 1)[1] if __doc__ else "",
)
