"""Small builders shared by the NES tests."""

from __future__ import annotations

from simulator.nes import BandFacts, Nes

U1 = "CORP\\tw-user1"
U2 = "CORP\\tw-user2"
U3 = "CORP\\tw-user3"
ADMIN = "CORP\\admin"
SELF_SERVICE_OWN = "Allow a user to re-enroll / re-register their Nymi Band"
SELF_SERVICE_ANY = "Allow a user to re-enroll any active Nymi Band"


def band(serial: str, **facts: object) -> BandFacts:
    """A band as the NBA reports it; the device id is derived from the serial."""
    return BandFacts(serial=serial, device_id=f"dev-{serial.lower()}", **facts)  # type: ignore[arg-type]


def self_service(nes: Nes, *, own: bool = True, any_band: bool = False) -> None:
    """Set the self-service options on the active group policy."""
    active = next(p for p in nes.policies() if p.is_active)
    nes.update_policy(active.name, {SELF_SERVICE_OWN: own, SELF_SERVICE_ANY: any_band})


def states(nes: Nes, account: str) -> list[tuple[str, bool, bool]]:
    """``(serial, is_active, is_primary)`` of each band in the user's User Properties."""
    return [(b.serial, b.is_active, b.is_primary) for b in nes.user(account).bands]
