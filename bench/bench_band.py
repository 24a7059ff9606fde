"""Band-model benchmarks: Delete User Data and a whole enrollment at test speed, side by side
with the storage floor (one atomic, fsync'd file replace) measured in the same run.

Run: .venv/bin/python bench/bench_band.py
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

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


def _median_ms(setup: Callable[[], object], run: Callable[[object], None]) -> float:
    samples = []
    for _ in range(ROUNDS):
        state = setup()
        start = time.perf_counter()
        run(state)
        samples.append((time.perf_counter() - start) * 1000)
    return statistics.median(samples)


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        floor = _median_ms(lambda: root / "floor.bin",
                           lambda p: atomic_write(p, b"x" * 1024))  # type: ignore[arg-type]

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

        dud_ms = _median_ms(dud_setup, dud)
        enroll_ms = _median_ms(lambda: _band(root), lambda b: _enroll(b))  # type: ignore[arg-type]

    rows = [
        ("atomic 1 KiB replace + fsync (floor)", floor),
        ("Delete User Data (10 s band time)", dud_ms),
        ("enrollment, 8 touches (~14 s band time)", enroll_ms),
    ]
    print(f"{'operation':<44}{'median ms':>11}{'x floor':>9}")
    for name, ms in rows:
        print(f"{name:<44}{ms:>11.3f}{ms / floor:>9.2f}")


if __name__ == "__main__":
    main()
