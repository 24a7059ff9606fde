"""The band's body as the authenticator sees it: presence, verification, enrollment samples, erase.

CTAP leaves "evidence of user interaction" and "built-in user verification" to the authenticator
(CTAP 2.1 §5 terminology, §6.5.3 performBuiltInUv). On a Nymi band both come from the wearer:

* **Nymi fixtures** (``presence = "wrist-authenticated"``): the band verifies its wearer by
  fingerprint when it goes on the wrist; while it stays authenticated that *is* the built-in UV,
  and since the band reports ``up=false`` the NFC tap itself is the gesture, so presence is
  granted whenever the band is authenticated and denied at once otherwise.
* **Reference fixture** (``presence = "button"``): presence is a button press; built-in UV is a
  match on the fingerprint sensor, whose templates are enrolled through authenticatorBioEnrollment.

:class:`Wearer` is the seam; the simulated band implements it for real. :class:`AutoWearer` grants
everything at once for unattended CI; :class:`ScriptedWearer` replays scripted outcomes for tests
that need a denial, a no-match, a timeout or a cancel.
"""

from __future__ import annotations

import enum
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from simulator.band.storage import FlashStorage


class PresenceResult(enum.Enum):
    """Outcome of a test of user presence (CTAP 2.1 §6.1.2 step 14, §6.2.2 step 9)."""

    GRANTED = "granted"
    DENIED = "denied"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class UvResult(enum.Enum):
    """Outcome of one built-in user verification attempt (CTAP 2.1 §6.5.3 performBuiltInUv)."""

    MATCHED = "matched"
    NO_MATCH = "no-match"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


class SampleStatus(enum.IntEnum):
    """lastEnrollSampleStatus values for fingerprint enrollment (CTAP 2.1 §6.7.4)."""

    GOOD = 0x00
    TOO_HIGH = 0x01
    TOO_LOW = 0x02
    TOO_LEFT = 0x03
    TOO_RIGHT = 0x04
    TOO_FAST = 0x05
    TOO_SLOW = 0x06
    POOR_QUALITY = 0x07
    TOO_SKEWED = 0x08
    TOO_SHORT = 0x09
    MERGE_FAILURE = 0x0A
    EXISTS = 0x0B
    DATABASE_FULL = 0x0C
    NO_USER_ACTIVITY = 0x0D
    NO_UP_TRANSITION = 0x0E


class CaptureOutcome(enum.Enum):
    """Whether a capture produced a sample at all."""

    SAMPLE = "sample"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"


@dataclass(frozen=True)
class SampleResult:
    """One enrollment capture: a sample with its quality status, or no sample (timeout/cancel)."""

    outcome: CaptureOutcome
    status: SampleStatus = SampleStatus.GOOD

    @classmethod
    def good(cls) -> SampleResult:
        return cls(CaptureOutcome.SAMPLE, SampleStatus.GOOD)

    @classmethod
    def rejected(cls, status: SampleStatus) -> SampleResult:
        return cls(CaptureOutcome.SAMPLE, status)

    @classmethod
    def timeout(cls) -> SampleResult:
        return cls(CaptureOutcome.TIMEOUT, SampleStatus.NO_USER_ACTIVITY)

    @classmethod
    def cancelled(cls) -> SampleResult:
        return cls(CaptureOutcome.CANCELLED, SampleStatus.NO_USER_ACTIVITY)


@runtime_checkable
class Wearer(Protocol):
    """What the authenticator core needs from the band's body.

    The waits are synchronous: a transport runs the authenticator in a worker thread and sets
    ``cancel`` when the platform cancels (CTAPHID_CANCEL, NFC deselect). An implementation must
    return promptly once ``cancel`` is set.
    """

    def is_verified(self) -> bool:
        """Whether the wearer is verified now (Nymi: authenticated on the wrist)."""
        ...

    def wait_for_presence(self, timeout_s: float, cancel: threading.Event) -> PresenceResult:
        """Collect evidence of user interaction (Nymi: granted iff authenticated)."""
        ...

    def verify_user(self, timeout_s: float, cancel: threading.Event) -> UvResult:
        """Run one built-in user verification attempt (reference: a fingerprint match)."""
        ...

    def capture_enrollment_sample(self, timeout_s: float, cancel: threading.Event) -> SampleResult:
        """Capture one fingerprint sample for authenticatorBioEnrollment."""
        ...

    def erase_user_data(self) -> None:
        """Delete User Data: crypto-erase every user record of the band (template included)."""
        ...


@runtime_checkable
class BandBody(Protocol):
    """What a wearer that *is* a band's body adds (optional; :class:`BandWearer` has it).

    With it the authenticator follows the band's own life: it registers for the band's wipes and
    power losses itself, a power cycle it is asked for is the whole band's (its RAM, wrist
    authentication included), Delete User Data through authenticatorReset demands the band's
    gesture, and CTAPHID_WINK is a vibration.
    """

    def watch(self, on_erased: Callable[[], None], on_power_lost: Callable[[], None]) -> None:
        """Call ``on_erased`` after every Delete User Data, ``on_power_lost`` after power loss."""
        ...

    def power_cycle(self) -> None:
        """Cut the band's power for an instant (its RAM is lost, its flash kept)."""
        ...

    def delete_gesture_held(self) -> bool:
        """Off the wrist, on the charger, the bottom button held down right now."""
        ...

    def can_wink(self) -> bool:
        """The band has a vibration motor."""
        ...

    def wink(self) -> None:
        """One short vibration, to tell the user which band the host means."""
        ...


class AutoWearer:
    """Unattended CI: a matching finger on a worn band; every request granted at once.

    Its :meth:`erase_user_data` crypto-erases ``storage`` (the band's own Delete User Data).
    """

    def __init__(self, storage: FlashStorage) -> None:
        self._storage = storage

    def is_verified(self) -> bool:
        return True

    def wait_for_presence(self, timeout_s: float, cancel: threading.Event) -> PresenceResult:
        return PresenceResult.CANCELLED if cancel.is_set() else PresenceResult.GRANTED

    def verify_user(self, timeout_s: float, cancel: threading.Event) -> UvResult:
        return UvResult.CANCELLED if cancel.is_set() else UvResult.MATCHED

    def capture_enrollment_sample(self, timeout_s: float, cancel: threading.Event) -> SampleResult:
        return SampleResult.cancelled() if cancel.is_set() else SampleResult.good()

    def erase_user_data(self) -> None:
        self._storage.crypto_erase()


class ScriptedWearer:
    """A wearer whose answers are scripted, for tests of denials, no-matches, timeouts, cancels.

    Each ``wait_for_presence`` / ``verify_user`` / ``capture_enrollment_sample`` call takes the
    next scripted result; when a script runs out the default applies. Without a presence script
    presence follows :attr:`verified` (the Nymi rule: granted iff authenticated on the wrist).
    A set ``cancel`` event always wins. Every call is recorded in :attr:`calls`.
    """

    def __init__(
        self,
        storage: FlashStorage | None = None,
        *,
        verified: bool = True,
        presence: Iterable[PresenceResult] = (),
        uv: Iterable[UvResult] = (),
        samples: Iterable[SampleResult] = (),
        default_uv: UvResult = UvResult.MATCHED,
        default_sample: SampleResult | None = None,
        delete_gesture: bool = False,
    ) -> None:
        self._storage = storage
        self.verified = verified
        #: Whether :meth:`delete_gesture_held` reports the Delete User Data gesture.
        self.delete_gesture = delete_gesture
        self.presence: deque[PresenceResult] = deque(presence)
        self.uv: deque[UvResult] = deque(uv)
        self.samples: deque[SampleResult] = deque(samples)
        self.default_uv = default_uv
        self.default_sample = default_sample or SampleResult.good()
        self.calls: list[str] = []
        self.erased = 0

    def is_verified(self) -> bool:
        return self.verified

    def wait_for_presence(self, timeout_s: float, cancel: threading.Event) -> PresenceResult:
        self.calls.append("presence")
        if cancel.is_set():
            return PresenceResult.CANCELLED
        if self.presence:
            return self.presence.popleft()
        return PresenceResult.GRANTED if self.verified else PresenceResult.DENIED

    def verify_user(self, timeout_s: float, cancel: threading.Event) -> UvResult:
        self.calls.append("uv")
        if cancel.is_set():
            return UvResult.CANCELLED
        return self.uv.popleft() if self.uv else self.default_uv

    def capture_enrollment_sample(self, timeout_s: float, cancel: threading.Event) -> SampleResult:
        self.calls.append("sample")
        if cancel.is_set():
            return SampleResult.cancelled()
        return self.samples.popleft() if self.samples else self.default_sample

    def delete_gesture_held(self) -> bool:
        """Off the wrist, on the charger, bottom button held (scripted)."""
        return self.delete_gesture

    def erase_user_data(self) -> None:
        self.calls.append("erase")
        self.erased += 1
        if self._storage is not None:
            self._storage.crypto_erase()
