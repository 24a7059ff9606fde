"""What a person does to a band, and which of the band's own events proves it was done.

A host flow never moves the physical world itself: it asks an :class:`Operator` for a
:class:`PhysicalStep` (wear the band, put it on its charger, hold the bottom button until the
user data is deleted, touch the sensor). The simulator's operator performs the step through the
control API; the console operator tells a person what to do. Either way the step counts only
once it is *confirmed*: by an event in the band's own log that :func:`confirms` accepts (or, on a
band that offers no event log, by the person typing what the band shows, which
:func:`shown_confirms` checks and the outcome records as confirmed by the operator).

Pure vocabulary: no I/O. Host and band share it, so both agree on what proves a step.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

from nymi_device.protocol import screens
from nymi_device.protocol.model import (
    AuthState,
    BandEvent,
    BandStatus,
    EnrollmentState,
    EventKind,
)


class PhysicalStep(enum.StrEnum):
    """A step a person performs on the band; the value is how a flow names it."""

    WEAR = "wear the band"
    TAKE_OFF = "take the band off the wrist"
    CHARGE = "put the band on its charger"
    UNCHARGE = "take the band off its charger"
    DELETE_USER_DATA = "hold the bottom button to delete user data"
    TOUCH_SENSOR = "touch the sensor for a fingerprint sample"
    AUTHENTICATE = "authenticate on the wrist with a matching finger"
    READ_SETUP_CODE = "read the setup code off the band"


#: What the console operator tells a person, per step.
INSTRUCTIONS: dict[PhysicalStep, str] = {
    PhysicalStep.WEAR: "Put the band on your wrist.",
    PhysicalStep.TAKE_OFF: "Take the band off your wrist.",
    PhysicalStep.CHARGE: "Put the band on its charger.",
    PhysicalStep.UNCHARGE: "Take the band off its charger.",
    PhysicalStep.DELETE_USER_DATA: (
        "With the band off the wrist and on its charger, hold the BOTTOM button until the band "
        "vibrates twice and shows USER DATA DELETED (about 10 s; a Band 2.0 shows SECURITY "
        "WIPE: release it then and wait for the wipe to finish)."),
    PhysicalStep.TOUCH_SENSOR: "Touch the sensor and the bezel with your finger, then lift it.",
    PhysicalStep.AUTHENTICATE: "Hold your enrolled finger on the sensor, touching the bezel.",
    PhysicalStep.READ_SETUP_CODE: "Type the setup code the band shows.",
}

#: On a band without an event log, what the person must see on it (any of these, upper-cased).
SHOWN: dict[PhysicalStep, tuple[str, ...]] = {
    PhysicalStep.WEAR: (screens.SETUP_CODE, screens.AUTH_REQUIRED),
    PhysicalStep.TAKE_OFF: (screens.NO_USER,),
    PhysicalStep.DELETE_USER_DATA: (screens.USER_DATA_DELETED, screens.NO_USER),
    PhysicalStep.AUTHENTICATE: (screens.AUTHENTICATED, screens.SUCCESS),
}


class Confirmation(enum.StrEnum):
    """Who confirmed that a step happened."""

    BAND = "band"
    """The band's own event log shows it."""
    OPERATOR = "operator"
    """The person typed what the band shows; the band itself offered no event for it."""


@dataclass(frozen=True)
class StepOutcome:
    """A confirmed step."""

    step: PhysicalStep
    confirmed_by: Confirmation
    events: tuple[BandEvent, ...] = ()
    text: str | None = None
    """What the person typed (the setup code, or the screen text they confirmed)."""
    screens: tuple[str, ...] = field(default=())

    @classmethod
    def from_events(cls, step: PhysicalStep, events: list[BandEvent],
                    text: str | None = None) -> StepOutcome:
        shown = tuple(str(e.data.get("screen")) for e in events if e.kind == EventKind.SCREEN)
        return cls(step, Confirmation.BAND, tuple(events), text, shown)


def confirms(step: PhysicalStep, event: BandEvent) -> bool:
    """Whether ``event`` in the band's log proves that ``step`` happened."""
    data = event.data
    match step:
        case PhysicalStep.WEAR:
            return event.kind == EventKind.WRIST and data.get("on_wrist") is True
        case PhysicalStep.TAKE_OFF:
            return event.kind == EventKind.WRIST and data.get("on_wrist") is False
        case PhysicalStep.CHARGE:
            return event.kind == EventKind.CHARGER and data.get("on_charger") is True
        case PhysicalStep.UNCHARGE:
            return event.kind == EventKind.CHARGER and data.get("on_charger") is False
        case PhysicalStep.DELETE_USER_DATA:
            return event.kind == EventKind.WIPE and data.get("phase") == "done"
        case PhysicalStep.TOUCH_SENSOR:
            return event.kind == EventKind.CAPTURE and "sample" in data
        case PhysicalStep.AUTHENTICATE:
            return event.kind == EventKind.AUTH and data.get("state") == AuthState.AUTHENTICATED
        case PhysicalStep.READ_SETUP_CODE:
            return False  # confirmed by the band accepting the code, not by an event
    return False


def already_done(step: PhysicalStep, status: BandStatus) -> bool:
    """Whether the band's present state already is what ``step`` would bring about."""
    match step:
        case PhysicalStep.WEAR:
            return status.on_wrist
        case PhysicalStep.TAKE_OFF:
            return not status.on_wrist
        case PhysicalStep.CHARGE:
            return status.on_charger
        case PhysicalStep.UNCHARGE:
            return not status.on_charger
        case PhysicalStep.AUTHENTICATE:
            return status.on_wrist and status.auth == AuthState.AUTHENTICATED
        case PhysicalStep.DELETE_USER_DATA:
            return status.enrollment == EnrollmentState.UNENROLLED
    return False


def shown_confirms(step: PhysicalStep, typed: str) -> bool:
    """Whether the screen text a person typed is what ``step`` leaves on the band."""
    wanted = {s.upper() for s in SHOWN.get(step, ())}
    return typed.strip().upper() in wanted


class ObservableBand(Protocol):
    """What an operator may look at on the band it works with (a :class:`SyncBand`)."""

    def status(self) -> BandStatus: ...

    def event_mark(self) -> int: ...

    def events_since(self, mark: int) -> tuple[list[BandEvent], int]: ...


class Operator(Protocol):
    """Whoever moves the physical world of a band for a flow."""

    def perform(self, step: PhysicalStep, band: ObservableBand) -> StepOutcome:
        """Have ``step`` done to ``band`` and return it confirmed.

        :raises StepNotConfirmedError: the band (or the person) did not confirm it in time.
        """
        ...
