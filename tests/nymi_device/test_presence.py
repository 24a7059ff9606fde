"""Taps, presence and Lock Control (nymi_device.presence), on synthetic RSSI series.

The series come from the simulator's own path-loss model (``PathLossModel``: RSSI = TX power
- 40 dB - 20 log10(d), rounded to whole dBm) for a 0 dBm band, one advertisement every 100 ms
(the simulated band's default advertising interval). Expected event times are worked out here
in closed form from the window lengths and thresholds, not by running the tracker twice.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from fractions import Fraction

import pytest

from nymi_device.errors import InvalidInputError
from nymi_device.presence import (
    PresenceConfig,
    PresenceEvent,
    PresenceEventKind,
    PresenceTracker,
    Proximity,
)
from nymi_device.protocol.fido_ble import BandFlags
from simulator.frontends.ble_radio import PathLossModel

K = PresenceEventKind
SERIAL = "AAAH-00125"
PERIOD = 0.1
ON = BandFlags.ENROLLED | BandFlags.AUTHENTICATED | BandFlags.ON_WRIST
TAKEN_OFF = BandFlags.ENROLLED
FAR, DESK, TAP, GONE = 5.0, 2.0, 0.05, 8.0
PATH = PathLossModel()


def rssi(distance: float) -> int:
    return PATH.rssi(0, distance)


def test_the_distances_give_the_rssi_the_tests_reason_with() -> None:
    assert [rssi(d) for d in (FAR, DESK, TAP, GONE)] == [-54, -46, -14, -58]


def rising(old: int, new: int, window: int, target: float) -> int:
    """Samples of ``new`` after a window full of ``old`` until the average is >= target."""
    return math.ceil(Fraction(window) * (Fraction(target) - old) / (new - old))


def falling(old: int, new: int, window: int, target: float) -> int:
    """Samples of ``new`` after a window full of ``old`` until the average is < target."""
    return math.floor(Fraction(window) * (old - Fraction(target)) / (old - new)) + 1


class Walk:
    """One band carried through distances, one advertisement per PERIOD."""

    def __init__(self, tracker: PresenceTracker, serial: str = SERIAL,
                 path: PathLossModel = PATH) -> None:
        self.tracker, self.serial, self.path = tracker, serial, path
        self.index = 0
        self.events: list[PresenceEvent] = []

    @staticmethod
    def t(index: int) -> float:
        return index * PERIOD

    def hold(self, distance: float, samples: int, flags: BandFlags | None = ON) -> None:
        for _ in range(samples):
            self.events += self.tracker.feed(self.serial, self.t(self.index),
                                             self.path.rssi(0, distance), flags)
            self.index += 1

    def kinds(self) -> list[PresenceEventKind]:
        return [e.kind for e in self.events]


def ev(kind: PresenceEventKind, index: int | None = None, *, time_s: float | None = None,
       rssi_avg: float | None = None, detail: str = "",
       deadline_s: float | None = None) -> PresenceEvent:
    when = Walk.t(index) if index is not None else time_s
    assert when is not None
    return PresenceEvent(kind, SERIAL, when, rssi_avg, detail, deadline_s)


# -- parameters ---------------------------------------------------------------------------------

def test_defaults_are_the_documented_endpoint_and_policy_values() -> None:
    config = PresenceConfig()
    assert (config.rssi_window_tap, config.rssi_window_long, config.rssi_tap_threshold) == (
        10, 50, -42)
    assert (config.lock_control, config.lock_when_away, config.unlock_when_present) == (
        False, True, True)
    assert (config.away_lock_after_s, config.lock_countdown_s) == (30.0, 10.0)
    assert config.taps_enabled and not PresenceConfig(rssi_tap_threshold=0).taps_enabled


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"rssi_tap_threshold": 5},
     "rssi_tap_threshold must be 0 (taps off) or negative dBm, got 5"),
    ({"rssi_tap_threshold": -42.5}, "rssi_tap_threshold must be a whole number of dBm"),
    ({"rssi_tap_threshold": -200}, "below the lowest RSSI a radio reports"),
    ({"rssi_window_tap": 0}, "rssi_window_tap must be a whole number of samples >= 1, got 0"),
    ({"rssi_window_long": 2.5}, "rssi_window_long must be a whole number of samples >= 1"),
    ({"rssi_window_long": True}, "rssi_window_long must be a whole number of samples >= 1"),
    ({"proximity_threshold": 30}, "proximity_threshold must be an RSSI in dBm"),
    ({"proximity_hysteresis_db": -1}, "proximity_hysteresis_db must be a number of dB >= 0"),
    ({"away_lock_after_s": math.nan}, "away_lock_after_s must be a number of seconds >= 0"),
    ({"lock_control": "yes"}, "lock_control must be true or false"),
])
def test_invalid_parameters_are_refused_with_one_line(kwargs: dict[str, object],
                                                       message: str) -> None:
    with pytest.raises(InvalidInputError) as caught:
        PresenceConfig(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


def test_parameters_from_nbe_toml() -> None:
    values = tomllib.loads('agent_url = "ws://127.0.0.1:9120/socket/websocket"\n'
                           "rssi_window_tap = 5\nRSSI_TAP_THRESHOLD = -50\n")
    config = PresenceConfig.from_nbe_toml(values, lock_control=True)
    assert (config.rssi_window_tap, config.rssi_window_long, config.rssi_tap_threshold) == (
        5, 50, -50)
    assert config.lock_control
    assert PresenceConfig.from_nbe_toml({}) == PresenceConfig()
    assert PresenceConfig.from_nbe_toml(values, rssi_window_tap=7).rssi_window_tap == 7
    with pytest.raises(InvalidInputError, match="nbe.toml: rssi_window_long must be a whole"):
        PresenceConfig.from_nbe_toml({"rssi_window_long": "50"})
    with pytest.raises(InvalidInputError, match="rssi_tap_threshold must be 0"):
        PresenceConfig.from_nbe_toml({"rssi_tap_threshold": 3})
    with pytest.raises(InvalidInputError, match="unknown presence parameter"):
        PresenceConfig.from_nbe_toml({}, rssi_window=3)


# -- taps -----------------------------------------------------------------------------------------

def test_a_tap_gives_exactly_one_tap_event_when_the_average_crosses_the_threshold() -> None:
    walk = Walk(PresenceTracker())
    walk.hold(DESK, 60)
    walk.hold(TAP, 15)
    walk.hold(DESK, 60)
    k = rising(-46, -14, 10, -42)
    assert k == 2  # (8 x -46 + 2 x -14) / 10 = -39.6 >= -42 > (9 x -46 - 14) / 10
    assert walk.events == [
        ev(K.NEAR, 49, rssi_avg=-46.0),  # first full long window, -46 >= -50
        ev(K.TAP, 60 + k - 1, rssi_avg=-39.6),
    ]


def test_the_next_tap_needs_the_average_to_fall_back_below() -> None:
    walk = Walk(PresenceTracker())
    walk.hold(DESK, 20)
    walk.hold(TAP, 15)
    walk.hold(DESK, 3)  # the average is still above -42: not re-armed
    walk.hold(TAP, 15)
    assert walk.kinds().count(K.TAP) == 1
    walk.hold(DESK, 20)  # falls below
    start = walk.index
    walk.hold(TAP, 15)
    assert walk.kinds().count(K.TAP) == 2
    assert walk.events[-1] == ev(K.TAP, start + 1, rssi_avg=-39.6)


def test_threshold_zero_disables_taps_even_with_the_band_on_the_reader() -> None:
    walk = Walk(PresenceTracker(PresenceConfig(rssi_tap_threshold=0)))
    assert rssi(0.01) == 0  # as strong as the model gets: the average reaches 0
    walk.hold(DESK, 20)
    walk.hold(0.01, 50)
    walk.hold(DESK, 20)
    walk.hold(0.01, 50)
    assert K.TAP not in walk.kinds()


@pytest.mark.parametrize("window", [1, 3, 10, 20])
def test_the_tap_window_sets_how_long_the_band_must_be_held(window: int) -> None:
    walk = Walk(PresenceTracker(PresenceConfig(rssi_window_tap=window)))
    walk.hold(DESK, 60)
    walk.hold(TAP, 30)
    taps = [e for e in walk.events if e.kind == K.TAP]
    assert [e.time_s for e in taps] == [Walk.t(60 + rising(-46, -14, window, -42) - 1)]


def test_a_larger_window_is_less_sensitive_to_a_brief_touch() -> None:
    def brief_touch(window: int) -> list[PresenceEventKind]:
        walk = Walk(PresenceTracker(PresenceConfig(rssi_window_tap=window)))
        walk.hold(DESK, 60)
        walk.hold(TAP, 3)
        walk.hold(DESK, 60)
        return walk.kinds()

    assert K.TAP in brief_touch(10)  # (7 x -46 + 3 x -14) / 10 = -36.4
    assert K.TAP not in brief_touch(50)  # (47 x -46 + 3 x -14) / 50 = -44.08


def test_a_band_first_heard_already_close_has_not_crossed_the_threshold() -> None:
    walk = Walk(PresenceTracker())
    walk.hold(TAP, 30)
    assert K.TAP not in walk.kinds()
    walk.hold(DESK, 30)
    walk.hold(TAP, 5)
    assert walk.kinds().count(K.TAP) == 1


@pytest.mark.parametrize("seed", range(20))
def test_noise_does_not_cause_a_second_tap(seed: int) -> None:
    noisy = PathLossModel(shadowing_db=3.0, seed=seed)
    walk = Walk(PresenceTracker(), path=noisy)
    walk.hold(DESK, 100)
    walk.hold(TAP, 20)
    walk.hold(DESK, 100)
    assert walk.kinds() == [K.NEAR, K.TAP]


def test_a_rearm_margin_stops_taps_from_a_band_hovering_at_the_threshold() -> None:
    hover = PATH.distance(0, -42)  # 1.26 m: the average wanders around the threshold

    def taps(rearm_db: float) -> int:
        walk = Walk(PresenceTracker(PresenceConfig(tap_rearm_db=rearm_db)),
                    path=PathLossModel(shadowing_db=3.0, seed=7))
        walk.hold(FAR, 20)
        walk.hold(hover, 600)
        return walk.kinds().count(K.TAP)

    assert taps(0.0) > 1  # the documented rule alone: every wobble across is a tap
    assert taps(6.0) == 1


# -- presence and Lock Control ------------------------------------------------------------------

LOCKING = PresenceConfig(lock_control=True, initially_locked=False)


def test_walking_away_locks_after_30_s_away_and_a_10_s_countdown() -> None:
    walk = Walk(PresenceTracker(LOCKING))
    walk.hold(DESK, 60)
    walk.hold(GONE, 450)
    away = 60 + falling(-46, -58, 50, -53) - 1
    assert away == 89  # (20 x -46 + 30 x -58) / 50 = -53.2 < -50 - 3
    t_away = Walk.t(away)
    assert walk.events == [
        ev(K.NEAR, 49, rssi_avg=-46.0),
        ev(K.AWAY, away, rssi_avg=-53.2),
        ev(K.LOCK_COUNTDOWN, time_s=t_away + 30.0, deadline_s=t_away + 30.0 + 10.0),
        ev(K.LOCK, time_s=t_away + 30.0 + 10.0, detail="away"),
    ]
    back = walk.index
    walk.hold(DESK, 60)
    near = back + rising(-58, -46, 50, -50) - 1
    assert walk.events[4:] == [ev(K.NEAR, near, rssi_avg=(16 * -58 + 34 * -46) / 50),
                               ev(K.UNLOCK, near, detail="present")]


def test_coming_back_during_the_countdown_cancels_it() -> None:
    walk = Walk(PresenceTracker(LOCKING))
    walk.hold(DESK, 60)
    walk.hold(GONE, 29 + 350)  # 35 s after the AWAY event
    walk.hold(DESK, 300)
    near = 60 + 29 + 350 + rising(-58, -46, 50, -50) - 1  # 38.3 s after AWAY: before the lock
    t_away = Walk.t(89)
    assert [(e.kind, e.time_s) for e in walk.events] == [
        (K.NEAR, Walk.t(49)), (K.AWAY, t_away), (K.LOCK_COUNTDOWN, t_away + 30.0),
        (K.NEAR, Walk.t(near)), (K.LOCK_CANCELLED, Walk.t(near))]


def test_coming_back_within_30_s_starts_no_countdown() -> None:
    walk = Walk(PresenceTracker(LOCKING))
    walk.hold(DESK, 60)
    walk.hold(GONE, 200)
    walk.hold(DESK, 400)
    assert walk.kinds() == [K.NEAR, K.AWAY, K.NEAR]


def test_removing_an_authenticated_band_locks_at_once() -> None:
    walk = Walk(PresenceTracker(PresenceConfig(lock_control=True)))
    walk.hold(DESK, 60)
    assert walk.events == [ev(K.NEAR, 49, rssi_avg=-46.0), ev(K.UNLOCK, 49, detail="present")]
    walk.hold(DESK, 1, TAKEN_OFF)
    assert walk.events[-1] == ev(K.LOCK, 60, detail="removed")
    walk.hold(DESK, 30, TAKEN_OFF)
    walk.hold(DESK, 30, BandFlags.ENROLLED | BandFlags.ON_WRIST)  # worn, not authenticated
    assert len(walk.events) == 3
    walk.hold(DESK, 1, ON)  # authenticated again, in close proximity
    assert walk.events[-1] == ev(K.UNLOCK, 121, detail="present")


def test_deauthentication_on_the_wrist_also_locks() -> None:
    walk = Walk(PresenceTracker(PresenceConfig(lock_control=True)))
    walk.hold(DESK, 60)
    walk.hold(DESK, 1, BandFlags.ENROLLED | BandFlags.ON_WRIST)
    assert walk.events[-1] == ev(K.LOCK, 60, detail="deauthenticated")


def test_removal_during_the_countdown_locks_at_once_and_only_once() -> None:
    walk = Walk(PresenceTracker(LOCKING))
    walk.hold(DESK, 60)
    walk.hold(GONE, 29 + 305)  # countdown showing since 30 s after AWAY
    walk.hold(GONE, 1, TAKEN_OFF)
    walk.hold(GONE, 200, TAKEN_OFF)
    assert walk.kinds() == [K.NEAR, K.AWAY, K.LOCK_COUNTDOWN, K.LOCK]
    assert walk.events[-1] == ev(K.LOCK, 60 + 29 + 305, detail="removed")


def test_lock_control_off_gives_presence_only() -> None:
    walk = Walk(PresenceTracker())
    walk.hold(DESK, 60)
    walk.hold(GONE, 500)
    walk.hold(DESK, 1, TAKEN_OFF)
    assert walk.kinds() == [K.NEAR, K.AWAY]


def test_lock_when_away_off_never_locks() -> None:
    walk = Walk(PresenceTracker(dataclasses.replace(LOCKING, lock_when_away=False)))
    walk.hold(DESK, 60)
    walk.hold(GONE, 500)
    walk.hold(GONE, 1, TAKEN_OFF)
    assert walk.kinds() == [K.NEAR, K.AWAY]


def test_unlock_when_present_off_leaves_unlocking_to_the_keyboard_anywhere_in_range() -> None:
    tracker = PresenceTracker(PresenceConfig(lock_control=True, unlock_when_present=False))
    walk = Walk(tracker)
    walk.hold(DESK, 60)
    assert walk.kinds() == [K.NEAR]  # no UNLOCK of its own
    assert tracker.may_unlock(SERIAL)
    walk.hold(GONE, 60)
    assert tracker.may_unlock(SERIAL)  # away, but in range
    walk.hold(GONE, 1, TAKEN_OFF)
    assert not tracker.may_unlock(SERIAL)

    present = PresenceTracker(PresenceConfig(lock_control=True))
    walk = Walk(present)
    walk.hold(GONE, 60)
    assert not present.may_unlock(SERIAL)  # in range but not in close proximity
    walk.hold(DESK, 60)
    assert present.may_unlock(SERIAL)


def test_a_band_no_longer_heard_goes_away_and_locks_on_timers_alone() -> None:
    tracker = PresenceTracker(LOCKING)
    walk = Walk(tracker)
    walk.hold(DESK, 60)
    last = Walk.t(59)
    events = tracker.advance(last + 100)
    lost = last + 10.0
    assert events == [ev(K.AWAY, time_s=lost, detail="signal lost"),
                      ev(K.LOCK_COUNTDOWN, time_s=lost + 30.0, deadline_s=lost + 40.0),
                      ev(K.LOCK, time_s=lost + 40.0, detail="away")]
    state = tracker.presence(SERIAL)
    assert state is not None and not state.in_range and state.locked
    assert tracker.feed(SERIAL, last + 101, rssi(DESK), ON) == []
    state = tracker.presence(SERIAL)
    assert state is not None and state.in_range and state.tap_average is None


def test_bands_are_tracked_independently() -> None:
    tracker = PresenceTracker()
    events: list[PresenceEvent] = []
    for index in range(100):
        t = Walk.t(index)
        near = rssi(TAP if 60 <= index < 70 else DESK)
        events += tracker.feed("AAAH-00001", t, near, ON)
        events += tracker.feed("AAAH-00002", t, rssi(GONE), None)
    assert [(e.serial, e.kind) for e in events] == [
        ("AAAH-00001", K.NEAR), ("AAAH-00002", K.AWAY), ("AAAH-00001", K.TAP)]
    assert tracker.serials == ["AAAH-00001", "AAAH-00002"]
    other = tracker.presence("AAAH-00002")
    assert other is not None and other.authenticated and other.flags is None  # not advertised
    assert other.proximity == Proximity.AWAY and other.long_average == -58.0


def test_a_band_without_advertised_state_counts_as_authenticated() -> None:
    walk = Walk(PresenceTracker(PresenceConfig(lock_control=True)))
    walk.hold(DESK, 60, None)
    assert walk.kinds() == [K.NEAR, K.UNLOCK]


def test_bad_samples_are_refused() -> None:
    tracker = PresenceTracker()
    tracker.feed(SERIAL, 5.0, -50)
    with pytest.raises(InvalidInputError, match="time went backwards"):
        tracker.feed(SERIAL, 4.0, -50)
    with pytest.raises(InvalidInputError, match="RSSI must be -127..20 dBm, got 127"):
        tracker.feed(SERIAL, 6.0, 127)  # HCI's "RSSI not available"
    with pytest.raises(InvalidInputError, match="finite"):
        tracker.advance(math.inf)
    assert tracker.presence("AAAH-99999") is None and not tracker.may_unlock("AAAH-99999")


def test_events_are_frozen_values() -> None:
    event = ev(K.LOCK_COUNTDOWN, time_s=1.0, deadline_s=11.0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        event.time_s = 2.0  # type: ignore[misc]
    assert event.to_dict() == {"event": "lock-countdown", "serial": SERIAL, "time_s": 1.0,
                               "rssi_avg": None, "detail": "", "deadline_s": 11.0}
