"""Configuration of one NES: the choices DOMAIN.md leaves open, as values rather than constants.

DOMAIN 10.4 notes that the documents do not say whose name the "…however it cannot be found."
message carries, nor whether the NES looks the stale association up by user or by band; DOMAIN
1.9 notes that the default liveness setting is contradictory between articles. Each is a field
here, with the default the project settled on.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass


class NotFoundName(enum.StrEnum):
    """Whose ``DOMAIN\\username`` the "…however it cannot be found." message names."""

    BAND_OWNER = "band-owner"
    """The owner recorded on the association that blocks the enrollment (default)."""
    REQUESTING_USER = "requesting-user"
    """The user who is signed in to the Nymi Band Application."""


class LookupOrder(enum.StrEnum):
    """Which existing association is looked up first when both would block an enrollment."""

    BAND_FIRST = "band-first"
    """The band's association first (a band of another user gives "Cannot perform…")."""
    USER_FIRST = "user-first"
    """The user's active band first (gives "…however it cannot be found.")."""


class OtherOwnerRefusal(enum.StrEnum):
    """The message for an enrollment to a band that the NES links to another user."""

    CANNOT_PERFORM = "cannot-perform"
    """"Cannot perform re-enrollment because …" (KB 29585818876820; default)."""
    NOT_FOUND = "not-found"
    """"A Nymi Band has been assigned to (user name), however it cannot be found." as older
    servers answered after a Band 2.0 security wipe (KB 360040822952)."""


@dataclass(frozen=True)
class NesConfig:
    """Per-server configuration; every field is an [I] choice of DOMAIN.md made explicit."""

    not_found_name: NotFoundName = NotFoundName.BAND_OWNER
    lookup_order: LookupOrder = LookupOrder.BAND_FIRST
    other_owner_refusal: OtherOwnerRefusal = OtherOwnerRefusal.CANNOT_PERFORM
    default_liveness: bool = True
    """Liveness in the seeded "Default Settings Set" (DOMAIN 1.9 [C]; 8.3 says it is checked)."""
    individual_policy_min_nba: tuple[int, int] = (1, 3)
    """Bands enrolled with an older NBA show "Information unavailable" (DOMAIN 2.5: CWP 1.3)."""
    write_attempts: int = 8
    """How often a write transaction is retried after a serialization failure or deadlock."""
    sqlite_busy_timeout_s: float = 30.0
    """How long a SQLite writer waits for another writer's lock before giving up."""
