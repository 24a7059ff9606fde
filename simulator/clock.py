"""Band time: a virtual clock with a speed factor.

Every physical duration in the simulator (a 10 s button hold, a 13 s liveness check, a battery
draining over days) is measured in *band seconds* on a :class:`VirtualClock`. Tests advance the
clock explicitly, so whole flows run in milliseconds of wall time; a daemon can instead let band
time follow wall time multiplied by a speed factor (:meth:`VirtualClock.run_realtime`).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from nymi_device.errors import InvalidInputError

#: The longest band time one step may let pass (ten years): more is a mistake, not a test.
MAX_DURATION_S = 10 * 365 * 24 * 3600.0


def check_duration(seconds: object, what: str = "duration") -> float:
    """``seconds`` if it is a finite, non-negative, sensible number of band seconds."""
    if isinstance(seconds, bool) or not isinstance(seconds, int | float):
        raise InvalidInputError(f"{what} must be a number of seconds, got {seconds!r}")
    if not math.isfinite(seconds) or seconds < 0 or seconds > MAX_DURATION_S:
        raise InvalidInputError(
            f"{what} must be between 0 and {MAX_DURATION_S:.0f} band seconds, got {seconds!r}")
    return float(seconds)


@dataclass(order=True)
class Timer:
    """A callback scheduled at a band time; :meth:`cancel` it to stop it from firing."""

    when: float
    seq: int
    callback: Callable[[], None] = field(compare=False)
    cancelled: bool = field(default=False, compare=False)

    def cancel(self) -> None:
        self.cancelled = True


class VirtualClock:
    """A discrete-event clock. ``now()`` only moves in :meth:`advance` (or :meth:`run_realtime`).

    :param start: band time at creation, in seconds.
    :param speed: band seconds per wall second for :meth:`run_realtime`.
    """

    def __init__(self, start: float = 0.0, speed: float = 1.0) -> None:
        if not (math.isfinite(speed) and speed > 0):
            raise ValueError("clock speed must be positive")
        if not math.isfinite(start) or start < 0:
            raise InvalidInputError(f"band time must be a finite number of seconds, got {start}")
        self._now = float(start)
        self.speed = speed
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        #: Hooks that tell the clock about events computed from state rather than scheduled
        #: (a battery crossing its critical level, a sleep timeout). Each returns the band time
        #: of its next event, or None, plus the callback to run then.
        self._background: list[Callable[[], tuple[float, Callable[[], None]] | None]] = []

    def now(self) -> float:
        return self._now

    def call_at(self, when: float, callback: Callable[[], None]) -> Timer:
        timer = Timer(max(when, self._now), next(self._seq), callback)
        heapq.heappush(self._timers, timer)
        return timer

    def call_later(self, delay: float, callback: Callable[[], None]) -> Timer:
        return self.call_at(self._now + max(0.0, delay), callback)

    def add_background(
        self, source: Callable[[], tuple[float, Callable[[], None]] | None]
    ) -> None:
        """Register a source of state-derived events (asked again after every event)."""
        self._background.append(source)

    def pending(self) -> bool:
        """Whether any scheduled (not background) timer is waiting."""
        self._drop_cancelled()
        return bool(self._timers)

    def _drop_cancelled(self) -> None:
        while self._timers and self._timers[0].cancelled:
            heapq.heappop(self._timers)

    def _next_event(self) -> tuple[float, Callable[[], None], Timer | None] | None:
        self._drop_cancelled()
        best: tuple[float, Callable[[], None], Timer | None] | None = None
        if self._timers:
            head = self._timers[0]
            best = (head.when, head.callback, head)
        for source in self._background:
            event = source()
            if event is not None and (best is None or event[0] < best[0]):
                best = (max(event[0], self._now), event[1], None)
        return best

    def advance(self, seconds: float) -> None:
        """Move band time forward, firing every timer and background event that falls due."""
        if seconds < 0:
            raise ValueError("band time cannot go backwards")
        self.advance_to(self._now + check_duration(seconds, "band time to let pass"))

    def advance_to(self, target: float) -> None:
        if not math.isfinite(target):
            raise InvalidInputError(f"band time must be finite, got {target}")
        while True:
            event = self._next_event()
            if event is None or event[0] > target:
                break
            when, callback, timer = event
            if timer is not None:
                heapq.heappop(self._timers)
            self._now = when
            callback()
        self._now = max(self._now, target)

    def settle(self, limit: float = 3600.0) -> None:
        """Run scheduled timers until none is left (at most ``limit`` band seconds ahead)."""
        deadline = self._now + limit
        self.advance_to(self._now)  # events already due (e.g. a battery set below critical)
        while self.pending():
            next_when = self._timers[0].when
            if next_when > deadline:
                break
            self.advance_to(next_when)

    async def sleep(self, seconds: float) -> None:
        """Wait ``seconds`` of band time in wall time scaled by :attr:`speed`."""
        await asyncio.sleep(seconds / self.speed)

    async def run_realtime(self, tick: float = 0.05) -> None:
        """Let band time follow wall time x speed until cancelled."""
        last = time.monotonic()
        while True:
            await asyncio.sleep(tick)
            now = time.monotonic()
            self.advance((now - last) * self.speed)
            last = now
