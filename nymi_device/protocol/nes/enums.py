"""The enterprise server's named values: policy kinds, enrollment destinations, EAM entries,
what an enrollment does, and a user's policy status."""

from __future__ import annotations

import enum


class PolicyKind(enum.StrEnum):
    GROUP = "group"
    INDIVIDUAL = "individual"


class EnrollmentDestination(enum.StrEnum):
    """Where an enrollment is written (DOMAIN 5 / 8.3 [I]: labels not documented)."""

    NES = "nes"
    NES_AND_EVIDIAN = "nes-and-evidian"


class EamKind(enum.StrEnum):
    """Entries of the Evidian-style registry (DOMAIN 5): two RFID-tab entries and a smart card."""

    RFID = "RFID"
    WEARABLE = "Wearable"
    SMART_CARD = "Smart Card"


class EamState(enum.StrEnum):
    ACTIVE = "active"
    BLACKLISTED = "blacklisted"
    DELETED = "deleted"


class Action(enum.StrEnum):
    """What an allowed enrollment does to the NES records."""

    FIRST = "enroll"
    """The band is free and the user has no active band: the band becomes active (and primary
    unless the user already has a primary band, as after "issue a temporary band")."""
    REENROLL_OWN = "re-enroll-own-band"
    """The band is already the user's: the same band stays listed (DOMAIN 3.4)."""
    SELF_SERVICE_FREE = "self-service-free-band"
    """The user has an active band and enrolls a band nobody holds: the old band stays listed
    not active (its primary flag kept), the new band is active."""
    TAKE_OVER = "self-service-band-of-another-user"
    """The band belonged to another user: that association is removed, the user's old band is
    listed not active but still primary, the new band active (DOMAIN 3.4)."""


class PolicyStatus(enum.StrEnum):
    """A user's policy status as the policy-membership search shows it (DOMAIN 2.5)."""

    NO_ACTIVE_BAND = "No active Nymi Band"
    PENDING = "Pending"
    ACTIVE = "Active"
    INFORMATION_UNAVAILABLE = "Information unavailable"
