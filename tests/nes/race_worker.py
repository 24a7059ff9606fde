"""A separate process that enrolls a band as soon as it is told to (for the race tests)."""

from __future__ import annotations

import multiprocessing.synchronize
from typing import Any

from simulator.nes import BandFacts, Nes, NesConflict, NesRefusal


def enroll_when_released(url: str, account: str, serial: str,
                         start: multiprocessing.synchronize.Barrier,
                         results: Any) -> None:
    with Nes.open(url) as nes:
        start.wait(timeout=60)
        try:
            nes.enroll(account, BandFacts(serial, device_id=f"dev-{serial.lower()}"))
        except (NesRefusal, NesConflict) as exc:
            results.put((account, "refused", str(exc)))
        else:
            results.put((account, "enrolled", ""))
