"""A flow holds its band for the whole flow: one flash open per enrollment and re-enrollment.

Counted, not timed: the ``flash_opens`` suite counts ``FlashStorage.open`` calls and world-file
rewrites around one enrollment and one self-service re-enrollment on a simulated band.
"""

from __future__ import annotations

from pathlib import Path

from bench.core import Context
from bench.suites import flash_opens
from simulator.band.storage import FlashStorage


def test_each_flow_opens_the_band_flash_once(tmp_path: Path) -> None:
    real_open = FlashStorage.open
    values = flash_opens.measure(Context(quick=True, runs=1, scratch=tmp_path))
    assert values["enroll_opens"] == 1
    assert values["reenroll_opens"] == 1
    # At most one world checkpoint per step (14 and 18 steps); a step that saved twice shows here.
    assert 0 < values["enroll_worlds"] <= 14
    assert 0 < values["reenroll_worlds"] <= 18
    assert FlashStorage.open == real_open  # the counter is removed afterwards
