"""The screen an idle band shows, from its power, wrist, enrollment and authentication state."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nymi_device.protocol import screens
from nymi_device.protocol.model import AuthState, EnrollmentState, PowerState

if TYPE_CHECKING:
    from simulator.band.band import EmulatedBand

#: Enrollment states between "Setup code" and the finished enrollment.
IN_ENROLLMENT = (
    EnrollmentState.SETUP_CODE_SHOWN,
    EnrollmentState.ADD_USER,
    EnrollmentState.CAPTURING,
    EnrollmentState.LABELING,
    EnrollmentState.APPLYING_POLICY,
)


def home_screen(band: EmulatedBand) -> str:
    """What an idle band shows in its present state (DOMAIN.md 1.1)."""
    if band.power != PowerState.AWAKE:
        return screens.BLANK
    if band.enrollment == EnrollmentState.UNENROLLED:
        return screens.SETUP_CODE if band.on_wrist else screens.NO_USER
    if band.enrollment == EnrollmentState.SETUP_CODE_SHOWN:
        return screens.SETUP_CODE
    if band.enrollment == EnrollmentState.ADD_USER:
        return screens.ADD_USER
    if band.enrollment == EnrollmentState.CAPTURING:
        return screens.TOUCH_SENSOR
    if band.enrollment in (EnrollmentState.LABELING, EnrollmentState.APPLYING_POLICY):
        return screens.SUCCESS
    if band.auth == AuthState.LOCKED_OUT:
        return band.fixture.screens.locked_out
    if not band.on_wrist:
        return screens.DEAUTHENTICATED
    if band.auth == AuthState.AUTHENTICATED:
        return screens.AUTHENTICATED
    return screens.AUTH_REQUIRED
