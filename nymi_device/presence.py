"""Taps, presence and Lock Control from advertisement RSSI, as the Nymi Bluetooth Endpoint does it.

Pure: samples in, events out; no I/O, no clock of its own. Feed each advertisement a band sends
as ``(time_s, rssi, state_flags)`` and call :meth:`PresenceTracker.advance` when time passes
without advertisements (timers fire then)::

    tracker = PresenceTracker(PresenceConfig(lock_control=True))
    for event in tracker.feed("AAAH-00125", 12.3, -44, BandFlags.AUTHENTICATED | ...):
        print(event.kind, event.time_s)

**What the endpoint documents** (DOMAIN 6.1, 6.2; the names are those of ``nbe.toml``):

* ``rssi_window_tap`` (default 10 samples): a rolling average over that many samples smooths the
  RSSI; a tap fires when the average passes ``rssi_tap_threshold``. Larger = slower, less
  sensitive.
* ``rssi_tap_threshold`` (default -42 dBm): 0 or negative; 0 disables taps; more negative = the
  band must be held closer.
* ``rssi_window_long`` (default 50 samples; the newest article lists it as "Bluegiga: 50", so
  another adapter type may default differently): the window of the proximity trend Lock Control
  uses.
* Lock Control (policy; off by default): "Lock When Away" locks when an authenticated band is
  removed, or when the band is out of close proximity for at least 30 s, after a 10 s countdown;
  "Unlock When Present" unlocks when the band is in close proximity (when off, Enter or Space
  unlocks while the authenticated band is anywhere in range: :meth:`PresenceTracker.may_unlock`).

**What is ours** (inferred; every value is a :class:`PresenceConfig` field):

* A tap is a *crossing*: the tap-window average goes from below the threshold to at/above it,
  giving one :attr:`~PresenceEventKind.TAP`; the next tap needs the average to fall below
  ``rssi_tap_threshold - tap_rearm_db`` first. A band whose first full window is already above
  the threshold has not crossed it. Averages are taken only over full windows.
* "Close proximity" is the long-window average at or above ``proximity_threshold`` (default
  -50 dBm: 3.2 m from a 0 dBm band in free space); the band is away again once the average is
  below ``proximity_threshold - proximity_hysteresis_db``. Evaluated on every sample.
* The 30 s (``away_lock_after_s``) run from the :attr:`~PresenceEventKind.AWAY` event, then a
  ``lock_countdown_s`` countdown (:attr:`~PresenceEventKind.LOCK_COUNTDOWN`), then
  :attr:`~PresenceEventKind.LOCK`: the countdown follows the 30 s rather than ending them.
  Coming near again stops both (:attr:`~PresenceEventKind.LOCK_CANCELLED` if the countdown
  was showing).
* A band not heard for ``signal_lost_after_s`` is out of range: away (detail ``signal lost``)
  if it was near, and its windows start empty when it is heard again.
* "Removed": the advertised state loses AUTHENTICATED or ON_WRIST after having both. A band that
  does not advertise its state (``state_flags=None``) counts as authenticated and cannot be
  seen removed.
* The lock state is kept per band, as the session that band unlocks; it starts locked
  (``initially_locked``), so an authenticated band arriving in close proximity unlocks.

Event times are exact: a timer's event carries the time it fell due, even when the sample or
:meth:`~PresenceTracker.advance` call that noticed it came later.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from nymi_device.errors import InvalidInputError
from nymi_device.protocol.fido_ble import BandFlags

__all__ = [
    "DEFAULT_RSSI_TAP_THRESHOLD",
    "DEFAULT_RSSI_WINDOW_LONG",
    "DEFAULT_RSSI_WINDOW_TAP",
    "NBE_KEYS",
    "BandPresence",
    "PresenceConfig",
    "PresenceEvent",
    "PresenceEventKind",
    "PresenceTracker",
    "Proximity",
]

DEFAULT_RSSI_WINDOW_TAP = 10
DEFAULT_RSSI_WINDOW_LONG = 50
DEFAULT_RSSI_TAP_THRESHOLD = -42
#: The ``nbe.toml`` keys :meth:`PresenceConfig.from_nbe_toml` reads (IGEL spells them in capitals).
NBE_KEYS = ("rssi_window_tap", "rssi_window_long", "rssi_tap_threshold")

#: The RSSI range an HCI advertising report can carry, in dBm.
RSSI_MIN, RSSI_MAX = -127, 20
_ON_BODY = BandFlags.AUTHENTICATED | BandFlags.ON_WRIST


class PresenceEventKind(enum.StrEnum):
    TAP = "tap"
    NEAR = "near"
    AWAY = "away"
    LOCK_COUNTDOWN = "lock-countdown"
    LOCK_CANCELLED = "lock-cancelled"
    LOCK = "lock"
    UNLOCK = "unlock"


class Proximity(enum.StrEnum):
    UNKNOWN = "unknown"  # the long window has not filled yet
    NEAR = "near"
    AWAY = "away"


@dataclass(frozen=True)
class PresenceEvent:
    """Something Lock Control or the Agent acts on.

    ``rssi_avg`` is the window average that caused it (tap window for taps, long window for
    near/away), ``detail`` says why a lock or an away happened (``away``, ``removed``,
    ``deauthenticated``, ``signal lost``), ``deadline_s`` is when a countdown ends.
    """

    kind: PresenceEventKind
    serial: str
    time_s: float
    rssi_avg: float | None = None
    detail: str = ""
    deadline_s: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.kind.value, "serial": self.serial, "time_s": round(self.time_s, 6),
                "rssi_avg": None if self.rssi_avg is None else round(self.rssi_avg, 3),
                "detail": self.detail, "deadline_s": self.deadline_s}


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (isinstance(value, int | float) and not isinstance(value, bool)
            and math.isfinite(value))


@dataclass(frozen=True)
class PresenceConfig:
    """The endpoint's parameters (``nbe.toml``), the Lock Control policy and our inferences."""

    rssi_window_tap: int = DEFAULT_RSSI_WINDOW_TAP
    rssi_window_long: int = DEFAULT_RSSI_WINDOW_LONG
    rssi_tap_threshold: int = DEFAULT_RSSI_TAP_THRESHOLD
    #: Lock Control policy: "Enable Nymi Lock Control" (off by default), its two options (on).
    lock_control: bool = False
    lock_when_away: bool = True
    unlock_when_present: bool = True
    #: Inferred: what "close proximity" is, and the timings as read from the articles.
    proximity_threshold: float = -50.0
    proximity_hysteresis_db: float = 3.0
    tap_rearm_db: float = 0.0
    away_lock_after_s: float = 30.0
    lock_countdown_s: float = 10.0
    signal_lost_after_s: float = 10.0
    initially_locked: bool = True

    def __post_init__(self) -> None:
        for name in ("rssi_window_tap", "rssi_window_long"):
            value = getattr(self, name)
            if not _is_int(value) or value < 1:
                raise InvalidInputError(f"{name} must be a whole number of samples >= 1, "
                                        f"got {value!r}")
        threshold = self.rssi_tap_threshold
        if not _is_int(threshold):
            raise InvalidInputError(f"rssi_tap_threshold must be a whole number of dBm, "
                                    f"got {threshold!r}")
        if threshold > 0:
            raise InvalidInputError(f"rssi_tap_threshold must be 0 (taps off) or negative dBm, "
                                    f"got {threshold}")
        if threshold < RSSI_MIN:
            raise InvalidInputError(f"rssi_tap_threshold {threshold} dBm is below the lowest "
                                    f"RSSI a radio reports ({RSSI_MIN} dBm): no tap could fire")
        for name in ("lock_control", "lock_when_away", "unlock_when_present",
                     "initially_locked"):
            if not isinstance(getattr(self, name), bool):
                raise InvalidInputError(f"{name} must be true or false, "
                                        f"got {getattr(self, name)!r}")
        if not _is_number(self.proximity_threshold) or not (
                RSSI_MIN <= self.proximity_threshold <= RSSI_MAX):
            raise InvalidInputError(f"proximity_threshold must be an RSSI in dBm "
                                    f"({RSSI_MIN}..{RSSI_MAX}), got {self.proximity_threshold!r}")
        for name in ("proximity_hysteresis_db", "tap_rearm_db"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise InvalidInputError(f"{name} must be a number of dB >= 0, got {value!r}")
        for name in ("away_lock_after_s", "lock_countdown_s", "signal_lost_after_s"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise InvalidInputError(f"{name} must be a number of seconds >= 0, "
                                        f"got {value!r}")

    @property
    def taps_enabled(self) -> bool:
        return self.rssi_tap_threshold != 0

    @classmethod
    def from_nbe_toml(cls, values: Mapping[str, object], **overrides: Any) -> PresenceConfig:
        """The parameters of a parsed ``nbe.toml`` (keys in any case, as IGEL writes them).

        Keys that do not concern presence (``agent_url``, ...) are ignored; ``overrides`` set any
        field, and win over the file.
        """
        known = {f.name for f in fields(cls)}
        unknown = set(overrides) - known
        if unknown:
            raise InvalidInputError(f"unknown presence parameter(s): {', '.join(sorted(unknown))}")
        chosen: dict[str, Any] = {}
        for key, value in values.items():
            name = key.lower()
            if name in NBE_KEYS:
                if not _is_int(value):
                    raise InvalidInputError(f"nbe.toml: {key} must be a whole number, "
                                            f"got {value!r}")
                chosen[name] = value
        chosen.update(overrides)
        return cls(**chosen)


@dataclass(frozen=True)
class BandPresence:
    """One band as the tracker sees it now."""

    serial: str
    last_rssi: float
    last_seen_s: float
    in_range: bool
    tap_average: float | None
    long_average: float | None
    proximity: Proximity
    authenticated: bool
    flags: BandFlags | None
    locked: bool
    countdown_deadline_s: float | None


@dataclass
class _Band:
    serial: str
    tap: deque[float]
    long: deque[float]
    locked: bool
    last_seen: float
    last_rssi: float = 0.0
    in_range: bool = True
    tap_armed: bool = False
    proximity: Proximity = Proximity.UNKNOWN
    flags: BandFlags | None = None
    authenticated: bool = False
    away_since: float | None = None
    countdown_until: float | None = None

    @staticmethod
    def average(window: deque[float]) -> float | None:
        if window.maxlen is None or len(window) < window.maxlen:
            return None
        return sum(window) / len(window)


@dataclass
class PresenceTracker:
    """Per-band tap detection, proximity and Lock Control; time is whatever the caller feeds."""

    config: PresenceConfig = field(default_factory=PresenceConfig)
    _bands: dict[str, _Band] = field(default_factory=dict, init=False, repr=False)
    _now: float = field(default=-math.inf, init=False, repr=False)

    # -- input ---------------------------------------------------------------------------------

    def feed(self, serial: str, time_s: float, rssi: float,
             state_flags: BandFlags | int | None = None) -> list[PresenceEvent]:
        """One advertisement from ``serial``; the events it (and any timer due by then) causes."""
        if not _is_number(rssi) or not RSSI_MIN <= rssi <= RSSI_MAX:
            raise InvalidInputError(f"{serial}: RSSI must be {RSSI_MIN}..{RSSI_MAX} dBm, "
                                    f"got {rssi!r}")
        events = self.advance(time_s)
        flags = None if state_flags is None else BandFlags(int(state_flags) & 0x3F)
        band = self._bands.get(serial)
        if band is None:
            band = self._bands[serial] = _Band(
                serial, deque(maxlen=self.config.rssi_window_tap),
                deque(maxlen=self.config.rssi_window_long),
                locked=self.config.initially_locked, last_seen=time_s)
        band.last_seen, band.last_rssi, band.in_range = time_s, float(rssi), True
        self._state(band, time_s, flags, events)
        self._tap(band, time_s, float(rssi), events)
        self._proximity(band, time_s, float(rssi), events)
        self._maybe_unlock(band, time_s, events)
        return events

    def advance(self, time_s: float) -> list[PresenceEvent]:
        """Let time pass to ``time_s``: the timer events due by then, in time order."""
        if not _is_number(time_s):
            raise InvalidInputError(f"time must be a finite number of seconds, got {time_s!r}")
        if time_s < self._now:
            raise InvalidInputError(f"time went backwards: {time_s} s after {self._now} s")
        self._now = time_s
        events: list[PresenceEvent] = []
        while True:
            due = min(((when, band) for band in self._bands.values()
                       if (when := self._next_due(band)) is not None and when <= time_s),
                      key=lambda item: item[0], default=None)
            if due is None:
                return events
            self._fire(due[1], due[0], events)

    # -- queries -------------------------------------------------------------------------------

    @property
    def serials(self) -> list[str]:
        return sorted(self._bands)

    def presence(self, serial: str) -> BandPresence | None:
        band = self._bands.get(serial)
        if band is None:
            return None
        return BandPresence(
            serial=serial, last_rssi=band.last_rssi, last_seen_s=band.last_seen,
            in_range=band.in_range, tap_average=band.average(band.tap),
            long_average=band.average(band.long), proximity=band.proximity,
            authenticated=band.authenticated, flags=band.flags, locked=band.locked,
            countdown_deadline_s=band.countdown_until)

    def may_unlock(self, serial: str) -> bool:
        """Whether Lock Control lets the session of ``serial`` be unlocked now: the band is
        authenticated and in close proximity, or (Unlock When Present off) anywhere in range."""
        band = self._bands.get(serial)
        if band is None or not self.config.lock_control or not band.authenticated:
            return False
        if self.config.unlock_when_present:
            return band.proximity == Proximity.NEAR and band.in_range
        return band.in_range

    # -- the rules -----------------------------------------------------------------------------

    @property
    def _locks_when_away(self) -> bool:
        return self.config.lock_control and self.config.lock_when_away

    def _state(self, band: _Band, now: float, flags: BandFlags | None,
               events: list[PresenceEvent]) -> None:
        was = band.authenticated
        band.flags = flags
        band.authenticated = flags is None or _ON_BODY in flags
        if not was or band.authenticated or flags is None:
            return
        band.away_since = band.countdown_until = None
        if self._locks_when_away and not band.locked:
            band.locked = True
            detail = "removed" if BandFlags.ON_WRIST not in flags else "deauthenticated"
            events.append(PresenceEvent(PresenceEventKind.LOCK, band.serial, now,
                                        detail=detail))

    def _tap(self, band: _Band, now: float, rssi: float, events: list[PresenceEvent]) -> None:
        band.tap.append(rssi)
        average = band.average(band.tap)
        if average is None or not self.config.taps_enabled:
            return
        threshold = self.config.rssi_tap_threshold
        if average >= threshold:
            if band.tap_armed:
                band.tap_armed = False
                events.append(PresenceEvent(PresenceEventKind.TAP, band.serial, now,
                                            rssi_avg=average))
        elif average < threshold - self.config.tap_rearm_db:
            band.tap_armed = True

    def _proximity(self, band: _Band, now: float, rssi: float,
                   events: list[PresenceEvent]) -> None:
        band.long.append(rssi)
        average = band.average(band.long)
        if average is None:
            return
        config = self.config
        if average >= config.proximity_threshold:
            new = Proximity.NEAR
        elif (average < config.proximity_threshold - config.proximity_hysteresis_db
              or band.proximity == Proximity.UNKNOWN):
            new = Proximity.AWAY
        else:
            new = band.proximity
        if new != band.proximity:
            band.proximity = new
            events.append(PresenceEvent(PresenceEventKind(new.value), band.serial, now,
                                        rssi_avg=average))
            if new == Proximity.NEAR:
                self._came_back(band, now, events)
            else:
                self._went_away(band, now)

    def _went_away(self, band: _Band, now: float) -> None:
        if self._locks_when_away and not band.locked:
            band.away_since = now

    def _came_back(self, band: _Band, now: float, events: list[PresenceEvent]) -> None:
        if band.countdown_until is not None:
            events.append(PresenceEvent(PresenceEventKind.LOCK_CANCELLED, band.serial, now,
                                        detail="near again"))
        band.away_since = band.countdown_until = None

    def _maybe_unlock(self, band: _Band, now: float, events: list[PresenceEvent]) -> None:
        config = self.config
        if (config.lock_control and config.unlock_when_present and band.locked
                and band.proximity == Proximity.NEAR and band.authenticated):
            band.locked = False
            events.append(PresenceEvent(PresenceEventKind.UNLOCK, band.serial, now,
                                        detail="present"))

    # -- timers --------------------------------------------------------------------------------

    def _next_due(self, band: _Band) -> float | None:
        candidates: list[float] = []
        if band.in_range:
            candidates.append(band.last_seen + self.config.signal_lost_after_s)
        if band.countdown_until is not None:
            candidates.append(band.countdown_until)
        elif band.away_since is not None:
            candidates.append(band.away_since + self.config.away_lock_after_s)
        return min(candidates, default=None)

    def _fire(self, band: _Band, when: float, events: list[PresenceEvent]) -> None:
        config = self.config
        if band.countdown_until is not None and band.countdown_until == when:
            band.countdown_until = band.away_since = None
            band.locked = True
            events.append(PresenceEvent(PresenceEventKind.LOCK, band.serial, when,
                                        detail="away"))
        elif (band.countdown_until is None and band.away_since is not None
              and band.away_since + config.away_lock_after_s == when):
            band.countdown_until = when + config.lock_countdown_s
            events.append(PresenceEvent(PresenceEventKind.LOCK_COUNTDOWN, band.serial, when,
                                        deadline_s=band.countdown_until))
        else:  # not heard for signal_lost_after_s
            band.in_range = False
            band.tap.clear()
            band.long.clear()
            band.tap_armed = False
            if band.proximity == Proximity.NEAR:
                band.proximity = Proximity.AWAY
                events.append(PresenceEvent(PresenceEventKind.AWAY, band.serial, when,
                                            detail="signal lost"))
                self._went_away(band, when)
