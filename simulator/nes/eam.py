"""The Evidian-style EAM registry (DOMAIN.md 5, 3.4 step 2).

Per user and band the registry holds two RFID-tab entries, "RFID" and "Wearable", and for a
Secure NFC band a "Smart Card" entry. Each goes active → blacklisted → deleted; a blacklisted
smart card is shown as "Old Card". Blacklisting the Wearable blacklists both RFID-tab entries of
that band. Deleted entries are kept (state "deleted") so the history stays visible.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from simulator.nes.errors import NesConflict, NotFound
from simulator.nes.models import Band, EamEntry, EamKind, EamState, User
from simulator.nes.store import eam_view, now
from simulator.nes.views import EamEntryView

RFID_TAB = (EamKind.RFID, EamKind.WEARABLE)


def entries_of_band(session: Session, band: Band) -> list[EamEntry]:
    return list(session.scalars(select(EamEntry).where(EamEntry.band_id == band.id)
                                .order_by(EamEntry.id)))


def entries_of_user(session: Session, user: User, *, include_deleted: bool = True
                    ) -> list[EamEntryView]:
    query = select(EamEntry).where(EamEntry.user_id == user.id)
    if not include_deleted:
        query = query.where(EamEntry.state != EamState.DELETED)
    return [eam_view(e) for e in session.scalars(query.order_by(EamEntry.id))]


def live_rfid_state(session: Session, band: Band) -> EamState | None:
    """The state of the band's RFID entry while it is not deleted (active wins), else None."""
    states = {e.state for e in entries_of_band(session, band)
              if e.kind in RFID_TAB and e.state is not EamState.DELETED}
    if EamState.ACTIVE in states:
        return EamState.ACTIVE
    return EamState.BLACKLISTED if states else None


def register_band(session: Session, user: User, band: Band) -> tuple[EamEntryView, ...]:
    """Write the band's entries for ``user`` (an enrollment whose destination includes Evidian).

    Entries the user already holds for the band (not deleted) are kept as they are.
    """
    live = [e for e in entries_of_band(session, band)
            if e.user_id == user.id and e.state is not EamState.DELETED]
    if live:
        return tuple(eam_view(e) for e in live)
    stamp = now(session)
    identifier = band.nfc_id or band.device_id
    kinds = list(RFID_TAB) + ([EamKind.SMART_CARD] if band.secure_nfc else [])
    rows = [EamEntry(user=user, band=band, kind=kind, state=EamState.ACTIVE,
                     identifier=identifier if kind in RFID_TAB else f"SC-{identifier}",
                     created_at=stamp, updated_at=stamp) for kind in kinds]
    session.add_all(rows)
    session.flush()
    return tuple(eam_view(e) for e in rows)


def _entry(session: Session, entry_id: int) -> EamEntry:
    row = session.get(EamEntry, entry_id)
    if row is None:
        raise NotFound(f"no EAM registry entry {entry_id}", "eam-entry", str(entry_id))
    return row


def blacklist(session: Session, entry_id: int) -> list[EamEntryView]:
    """Blacklist an entry; the Wearable takes the band's RFID entry with it (DOMAIN 5).

    Returns every entry whose state changed.
    """
    row = _entry(session, entry_id)
    if row.state is not EamState.ACTIVE:
        raise NesConflict(f"the {row.kind.value} entry {row.identifier} is {row.state.value}; "
                          "only an active entry can be blacklisted", entry=entry_id)
    targets = [row]
    if row.kind is EamKind.WEARABLE:
        targets += [e for e in entries_of_band(session, row.band)
                    if e.user_id == row.user_id and e.kind is EamKind.RFID
                    and e.state is EamState.ACTIVE]
    stamp = now(session)
    for entry in targets:
        entry.state = EamState.BLACKLISTED
        entry.updated_at = stamp
    session.flush()
    return [eam_view(e) for e in targets]


def delete(session: Session, entry_id: int) -> EamEntryView:
    """Delete a blacklisted entry (an active one must be blacklisted first)."""
    row = _entry(session, entry_id)
    if row.state is not EamState.BLACKLISTED:
        raise NesConflict(f"the {row.kind.value} entry {row.identifier} is {row.state.value}; "
                          "blacklist it before deleting it", entry=entry_id)
    row.state = EamState.DELETED
    row.updated_at = now(session)
    session.flush()
    return eam_view(row)
