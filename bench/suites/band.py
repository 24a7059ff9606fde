"""Band-model benchmarks: Delete User Data and a whole enrollment at test speed, side by side
with the storage floor (one atomic, fsync'd file replace) measured in the same run."""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from bench.core import Context, Figure, Suite, Target, Values
from nymi_device.protocol.model import Button
from simulator.band.band import EmulatedBand
from simulator.band.records import BandPolicy, Identity
from simulator.band.storage import FlashStorage, atomic_write
from simulator.clock import VirtualClock
from simulator.fixtures import load_fixture

ROUNDS = 30


def _band(root: Path) -> EmulatedBand:
    fixture = load_fixture("nymi-band-3.0")
    storage = FlashStorage.open(Path(tempfile.mkdtemp(dir=root)), durable=True)
    return EmulatedBand.create(fixture, storage, VirtualClock(),
                               Identity.new("AAAH-00125", fixture.id))


def _enroll(band: EmulatedBand) -> None:
    band.put_on()
    band.enter_setup_code(band.setup_code or "")
    band.start_capture()
    for _ in range(band.fixture.limits.enrollment_touches):
        band.place_finger()
        band.settle()
    band.set_label("bench")
    band.apply_policy(BandPolicy())
    band.settle()


def _median_ms(setup: Callable[[], object], run: Callable[[object], None],
               rounds: int = ROUNDS) -> float:
    samples = []
    for _ in range(rounds):
        state = setup()
        start = time.perf_counter()
        run(state)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def measure(ctx: Context) -> Values:
    rounds = int(ctx.pick(5, ROUNDS))
    root = Path(tempfile.mkdtemp(dir=ctx.scratch))
    floor = _median_ms(lambda: root / "floor.bin",
                       lambda p: atomic_write(p, b"x" * 1024), rounds)  # type: ignore[arg-type]

    def dud_setup() -> EmulatedBand:
        band = _band(root)
        _enroll(band)
        band.take_off()
        band.attach_charger()
        return band

    def dud(band: object) -> None:
        assert isinstance(band, EmulatedBand)
        band.hold(Button.BOTTOM, 10)
        assert band.screen == "USER DATA DELETED"

    dud_ms = _median_ms(dud_setup, dud, rounds)
    enroll_ms = _median_ms(lambda: _band(root), lambda b: _enroll(b), rounds)  # type: ignore[arg-type]
    return {"floor": floor, "dud": dud_ms, "enroll": enroll_ms}


SUITE = Suite(
    name="band",
    title="Band model",
    measure=measure,
    figures=[
        Figure("floor", "atomic 1 KiB replace + fsync (floor)", "ms", digits=3),
        Figure("dud", "Delete User Data (10 s band time, crypto-erase + journal rewrite, "
               "all fsync'd)", "ms", reference="floor", target=Target("<=", 100, "value"),
               digits=3),
        Figure("enroll", "enrollment, 8 touches (~14 s band time)", "ms", reference="floor",
               digits=3),
    ],
    prose="""
Band time is virtual, so a flow's wall time is its computation plus its durable writes. The
floor is one atomic, fsync'd 1 KiB file replace on the same disk; each figure is the median of
30 fresh bands per run. Delete User Data has a 100 ms budget; with `durable=False` (what unit
tests use) it is about 0.3 ms.
""",
)
