"""The band's body as its FIDO2 authenticator's :class:`~simulator.band.ctap.wearer.Wearer`.

* User verification is the band's own: authenticated on the wrist by fingerprint (and liveness).
* Presence on Nymi fixtures (``up=false``) is granted iff the band is authenticated; on the
  reference fixture it is a press of the top button, waited for.
* A built-in UV attempt on a band that is not yet authenticated waits for the next finger on the
  sensor; an enrollment sample for authenticatorBioEnrollment is the next finger, too.
* Taking the band off the wrist while a request waits cancels it.
* It is the authenticator's :class:`~simulator.band.ctap.wearer.BandBody`: the authenticator
  registers for the band's wipes and power losses through it, a power cycle it asks for is the
  whole band's, authenticatorReset on a Nymi band asks it whether the Delete User Data gesture
  is being made, and CTAPHID_WINK is one vibration.
* ``auto_presence`` answers every request for the wearer's action at once, as a matching finger
  on a worn band would (for unattended CI): a worn band that is not authenticated is given a
  matching finger; a band that is off the wrist still has no wearer and is refused.

The waits run in a transport's worker thread; band events arrive from the thread that moves the
physical world, through the band's listener list.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from nymi_device.protocol.model import BandEvent, EventKind
from simulator.band.band import EmulatedBand
from simulator.band.ctap.wearer import PresenceResult, SampleResult, UvResult

_POLL_S = 0.02


class BandWearer:
    """Adapts an :class:`EmulatedBand` to the authenticator's ``Wearer`` protocol."""

    def __init__(self, band: EmulatedBand, *, auto_presence: bool = False) -> None:
        self.band = band
        self.auto_presence = auto_presence
        ctap = band.fixture.ctap
        self.presence_by_button = ctap is not None and ctap.presence == "button"

    def _auto_finger(self) -> bool:
        """Auto presence: authenticate a worn band with a simulated matching finger."""
        band = self.band
        with band.lock:
            if not band.on_wrist or band.power.value == "off":
                return False
            if not band.is_authenticated and band.enrollment.value == "enrolled" and (
                    band.auth.value != "locked-out"):
                band.place_finger(match=True, ecg_ok=True)
                band.settle()
            return band.is_authenticated or band.enrollment.value != "enrolled"

    def is_verified(self) -> bool:
        if self.auto_presence:
            return self._auto_finger() and self.band.enrollment.value == "enrolled"
        return self.band.is_authenticated

    def _wait_for(
        self, timeout_s: float, cancel: threading.Event,
        decide: Callable[[BandEvent], str | None],
    ) -> str:
        """Wait for the first event ``decide`` maps to an outcome; or 'timeout' / 'cancelled'."""
        outcome: list[str] = []
        arrived = threading.Event()

        def listen(event: BandEvent) -> None:
            if event.kind == EventKind.WRIST and not event.data.get("on_wrist", True):
                outcome.append("removed")
            else:
                result = decide(event)
                if result is None:
                    return
                outcome.append(result)
            arrived.set()

        unsubscribe = self.band.subscribe(listen)
        try:
            deadline = time.monotonic() + timeout_s
            while not arrived.is_set():
                if cancel.is_set():
                    return "cancelled"
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return "timeout"
                arrived.wait(min(_POLL_S, remaining))
            return outcome[0]
        finally:
            unsubscribe()

    def wait_for_presence(self, timeout_s: float, cancel: threading.Event) -> PresenceResult:
        if cancel.is_set():
            return PresenceResult.CANCELLED
        if self.auto_presence:
            return PresenceResult.GRANTED if self._auto_finger() else PresenceResult.DENIED
        if not self.presence_by_button:
            return PresenceResult.GRANTED if self.band.is_authenticated else PresenceResult.DENIED
        result = self._wait_for(timeout_s, cancel, lambda e: "pressed" if (
            e.kind == EventKind.BUTTON and e.data.get("pressed")) else None)
        return {
            "pressed": PresenceResult.GRANTED,
            "removed": PresenceResult.CANCELLED,
            "timeout": PresenceResult.TIMEOUT,
        }.get(result, PresenceResult.CANCELLED)

    def verify_user(self, timeout_s: float, cancel: threading.Event) -> UvResult:
        if cancel.is_set():
            return UvResult.CANCELLED
        if self.auto_presence:
            return UvResult.MATCHED if self.is_verified() else UvResult.NO_MATCH
        if self.band.is_authenticated:
            return UvResult.MATCHED
        result = self._wait_for(timeout_s, cancel, lambda e: (
            ("match" if e.data.get("match") else "no-match") if e.kind == EventKind.FINGER
            else None))
        return {
            "match": UvResult.MATCHED,
            "no-match": UvResult.NO_MATCH,
            "timeout": UvResult.TIMEOUT,
        }.get(result, UvResult.CANCELLED)

    def capture_enrollment_sample(self, timeout_s: float, cancel: threading.Event) -> SampleResult:
        if cancel.is_set():
            return SampleResult.cancelled()
        if self.auto_presence:
            return SampleResult.good() if self._auto_finger() else SampleResult.timeout()
        result = self._wait_for(timeout_s, cancel,
                                lambda e: "sample" if e.kind == EventKind.FINGER else None)
        if result == "sample":
            return SampleResult.good()
        return SampleResult.timeout() if result == "timeout" else SampleResult.cancelled()

    def erase_user_data(self) -> None:
        self.band.erase_user_data()

    # -- the band's own life (BandBody) ---------------------------------------------------------

    def watch(self, on_erased: Callable[[], None], on_power_lost: Callable[[], None]) -> None:
        self.band.wipe_hooks.append(on_erased)
        self.band.power_cycle_hooks.append(on_power_lost)

    def power_cycle(self) -> None:
        with self.band.lock:
            self.band.power_cycle()

    def delete_gesture_held(self) -> bool:
        band = self.band
        with band.lock:
            return (band.fixture.capabilities.wipe_gesture == "delete-user-data"
                    and band.power.value != "off" and band.delete_gesture_held())

    def can_wink(self) -> bool:
        return self.band.fixture.capabilities.haptics

    def wink(self) -> None:
        with self.band.lock:
            if self.band.power.value != "off":
                self.band.wink()
