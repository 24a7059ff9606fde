"""Administrator actions on bands (DOMAIN.md 1.10 and 3.5), each inside a transaction.

- :func:`update_band` — the "Nymi Band" page: Is Active, Is Primary, Notes, Save.
- :func:`suspend` — clear Is Active and tick Is Primary, as the suspend article does
  (DOMAIN 1.10).
- :func:`disconnect` — delete the association; the audit trail keeps its history.
- :func:`replace_lost_band` — Is Active and Is Primary cleared, Notes "Lost Band"; the user then
  enrolls a new band, which becomes active and primary.
- :func:`issue_temporary_band` — Is Active cleared, Is Primary kept ticked; the band the user
  enrolls next becomes active but not primary.
- :func:`restore_original` — disassociate the temporary band, reactivate the original.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes.errors import NesConflict, NotFound
from simulator.nes.enrollment import drop_band_records
from simulator.nes.models import Assignment, Band, Fido2Key
from simulator.nes.store import active_assignment, assignment_of, get_band


def assignment_for(session: Session, serial: str) -> tuple[Band, Assignment]:
    band = get_band(session, serial)
    row = assignment_of(session, band)
    if row is None:
        raise NotFound(f"the Nymi Band {serial} is not assigned to anyone", "assignment", serial)
    return band, row


def update_band(session: Session, serial: str, *, is_active: bool | None = None,
                is_primary: bool | None = None, notes: str | None = None) -> Assignment:
    band, row = assignment_for(session, serial)
    if is_active and not row.is_active:
        other = active_assignment(session, row.user)
        if other is not None and other.id != row.id:
            raise NesConflict(
                f"{row.user.account} already has an active Nymi Band ({other.band.serial}); "
                "clear its Is Active first (one active Nymi Band per user)",
                serial=serial, active_band=other.band.serial)
    changed = False
    for name, value in (("is_active", is_active), ("is_primary", is_primary), ("notes", notes)):
        if value is not None and getattr(row, name) != value:
            setattr(row, name, value)
            changed = True
    if changed:
        band.version += 1
    session.flush()
    return row


def suspend(session: Session, serial: str, *, notes: str | None = None) -> Assignment:
    return update_band(session, serial, is_active=False, is_primary=True, notes=notes)


def disconnect(session: Session, serial: str) -> Assignment:
    """Delete the band's association (and the records that hang off it). Returns the deleted
    row, still readable for the former owner's account."""
    band, row = assignment_for(session, serial)
    drop_band_records(session, row)
    for key in session.scalars(select(Fido2Key).where(Fido2Key.band_id == band.id,
                                                      Fido2Key.user_id == row.user_id)):
        session.delete(key)
    session.delete(row)
    band.version += 1
    session.flush()
    return row


def replace_lost_band(session: Session, serial: str, *, notes: str = "Lost Band") -> Assignment:
    return update_band(session, serial, is_active=False, is_primary=False, notes=notes)


def issue_temporary_band(session: Session, serial: str, *,
                         notes: str = "Temporary band issued") -> Assignment:
    return update_band(session, serial, is_active=False, is_primary=True, notes=notes)


def restore_original(session: Session, serial: str) -> Assignment:
    """Disassociate the user's temporary band and reactivate the original ``serial``."""
    _band, original = assignment_for(session, serial)
    if original.is_active:
        raise NesConflict(f"the Nymi Band {serial} is already the active band of "
                          f"{original.user.account}", serial=serial)
    temporary = active_assignment(session, original.user)
    if temporary is not None:
        disconnect(session, temporary.band.serial)
    return update_band(session, serial, is_active=True, is_primary=True)
