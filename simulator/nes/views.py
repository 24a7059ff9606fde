"""What the service layer returns: the shared views of :mod:`nymi_device.protocol.nes.views`."""

from __future__ import annotations

from nymi_device.protocol.nes.enums import PolicyStatus
from nymi_device.protocol.nes.views import (
    AssignmentView,
    AuditEventView,
    BandView,
    EamEntryView,
    EnrollmentCheck,
    EnrollmentResult,
    Fido2KeyView,
    PolicyView,
    UserView,
    settings_from_json,
    tap_verdict,
)
from nymi_device.protocol.text import b64url, from_b64url

__all__ = [
    "AssignmentView",
    "AuditEventView",
    "BandView",
    "EamEntryView",
    "EnrollmentCheck",
    "EnrollmentResult",
    "Fido2KeyView",
    "PolicyStatus",
    "PolicyView",
    "UserView",
    "b64url",
    "from_b64url",
    "settings_from_json",
    "tap_verdict",
]
