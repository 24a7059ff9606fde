"""Authentication failures and lockout: which message a failed touch shows, how the failure
streaks grow, and when the band locks out.

NO MATCH / NO ECG for the first failures in a row, then the documented advice in turn; a band
with the older UI shows "Retry" for both. Whether liveness failures have their own streak, how
many plain messages come first and how many failures lock the band are fixture values.
"""

from __future__ import annotations

from dataclasses import dataclass

from simulator.band.records import UserData
from simulator.fixtures import Fixture


@dataclass(frozen=True)
class Failure:
    """What one failed touch does to the band."""

    user: UserData
    """The wearer's record with the streaks (and lockout) updated."""
    message: str
    """The screen the band shows."""
    locked: bool
    failures: int
    """All failures in a row, for the lockout event."""


def failed_touch(fixture: Fixture, user: UserData, kind: str, now: float) -> Failure:
    """A fingerprint (``kind="fingerprint"``) or liveness (``"liveness"``) failure."""
    limits, texts = fixture.limits, fixture.screens
    separate = limits.separate_liveness_counter
    fp, lv = user.fingerprint_failures, user.liveness_failures
    if kind == "liveness" and separate:
        lv += 1
        streak, plain, advice = lv, texts.no_ecg, texts.no_ecg_advice
    else:
        fp += 1
        streak = fp
        plain = texts.no_ecg if kind == "liveness" else texts.no_match
        advice = texts.no_ecg_advice if kind == "liveness" else texts.no_match_advice
    if fixture.capabilities.failure_ui == "retry":
        message = texts.retry
    elif streak <= limits.plain_failure_messages or not advice:
        message = plain
    else:
        message = advice[(streak - limits.plain_failure_messages - 1) % len(advice)]
    locked = fp + lv >= limits.lockout_failures if separate else fp >= limits.lockout_failures
    updated = user.with_(fingerprint_failures=fp, liveness_failures=lv, locked_out=locked,
                         locked_since=now if locked else None)
    return Failure(updated, message, locked, fp + lv)
