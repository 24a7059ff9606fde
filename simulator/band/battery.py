"""The battery as a piecewise-linear function of band time.

The level is stored as (level, time) at the last change of rate and computed lazily, so band time
can jump by hours without stepping through it; the clock asks :meth:`Battery.next_crossing` when
the level will reach a threshold.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.fixtures import Battery as BatterySpec


@dataclass
class Battery:
    spec: BatterySpec
    level_at: float
    since: float
    #: Percent per band second; negative while draining.
    rate: float = 0.0

    def level(self, now: float) -> float:
        return min(100.0, max(0.0, self.level_at + self.rate * (now - self.since)))

    def rebase(self, now: float, *, draining: bool, charging: bool) -> None:
        """Fix the level at ``now`` and start the new rate (charge wins over drain)."""
        self.level_at = self.level(now)
        self.since = now
        if charging:
            self.rate = 100.0 / (self.spec.charge_hours * 3600.0)
        elif draining:
            self.rate = -100.0 / (self.spec.capacity_hours * 3600.0)
        else:
            self.rate = 0.0

    def set_level(self, now: float, level: float) -> None:
        self.level_at = min(100.0, max(0.0, level))
        self.since = now

    def next_crossing(self, now: float, threshold: float) -> float | None:
        """Band time at which the level reaches ``threshold`` moving at the present rate."""
        level = self.level(now)
        if self.rate < 0 and level > threshold:
            return now + (level - threshold) / -self.rate
        if self.rate > 0 and level < threshold:
            return now + (threshold - level) / self.rate
        return None

    @property
    def critical(self) -> float:
        return self.spec.critical_pct
