"""The Evidian-style EAM registry (DOMAIN.md 5, 3.4 step 2).

Per user and band the registry holds two RFID-tab entries, "RFID" and "Wearable", and for a
Secure NFC band a "Smart Card" entry. Each goes active → blacklisted → deleted; a blacklisted
smart card is shown as "Old Card". Deleted entries are kept (state "deleted") so the history
stays visible.

The RFID and Wearable entries of a band bind the same identifier and are one pair: blacklisting
either blacklists both (the vendor's return-a-band article blacklists the Wearable, "which
blacklists both"), and deleting either deletes both (the re-enrollment article blacklists and
deletes "the band's RFID entry"). Deleting an entry that is already deleted changes nothing, so
following either article to the letter ends with the pair deleted and no error.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes.errors import NesConflict, NotFound
from nymi_device.protocol.nes.views import EamEntryView
from simulator.nes.models import Band, EamEntry, EamKind, EamState, User
from simulator.nes.store import eam_view, now

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


def blocking_entry(session: Session, band: Band) -> EamEntry | None:
    """The band's RFID-tab entry that still binds it (an active one first), else None."""
    live = [e for e in entries_of_band(session, band)
            if e.kind in RFID_TAB and e.state is not EamState.DELETED]
    live.sort(key=lambda e: (e.state is not EamState.ACTIVE, e.id))
    return live[0] if live else None


def live_rfid_state(session: Session, band: Band) -> EamState | None:
    """The state of the band's RFID-tab pair while it is not deleted (active wins), else None."""
    entry = blocking_entry(session, band)
    return None if entry is None else entry.state


def blocking_message(serial: str, entry: EamEntry) -> str:
    """Why an enrollment of ``serial`` is refused: the entry that blocks and its real state."""
    todo = ("blacklist and delete it" if entry.state is EamState.ACTIVE else "delete it")
    return (f"The Nymi Band {serial} still has its {entry.kind.value} entry {entry.identifier} "
            f"({entry.state.value}) in the EAM registry, for {entry.user.account}: {todo} in "
            "the EAM Management Console (blacklist and delete the band's RFID entry) before "
            "enrolling the band again.")


def _pair(session: Session, row: EamEntry, state: EamState) -> list[EamEntry]:
    """``row`` and, for an RFID-tab entry, its partner of the same user and band in ``state``."""
    if row.kind not in RFID_TAB:
        return [row]
    return [row] + [e for e in entries_of_band(session, row.band)
                    if e.id != row.id and e.user_id == row.user_id and e.kind in RFID_TAB
                    and e.state is state]


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
    """Blacklist an entry; an RFID or Wearable entry takes its partner with it (DOMAIN 5).

    Returns every entry whose state changed.
    """
    row = _entry(session, entry_id)
    if row.state is not EamState.ACTIVE:
        raise NesConflict(f"the {row.kind.value} entry {row.identifier} is {row.state.value}; "
                          "only an active entry can be blacklisted", entry=entry_id)
    targets = _pair(session, row, EamState.ACTIVE)
    stamp = now(session)
    for entry in targets:
        entry.state = EamState.BLACKLISTED
        entry.updated_at = stamp
    session.flush()
    return [eam_view(e) for e in targets]


def delete(session: Session, entry_id: int) -> EamEntryView:
    """Delete a blacklisted entry, with its blacklisted RFID / Wearable partner; an active entry
    must be blacklisted first; an entry already deleted is left as it is."""
    row = _entry(session, entry_id)
    if row.state is EamState.DELETED:
        return eam_view(row)
    if row.state is not EamState.BLACKLISTED:
        raise NesConflict(f"the {row.kind.value} entry {row.identifier} is {row.state.value}; "
                          "blacklist it before deleting it", entry=entry_id)
    stamp = now(session)
    for entry in _pair(session, row, EamState.BLACKLISTED):
        entry.state = EamState.DELETED
        entry.updated_at = stamp
    session.flush()
    return eam_view(row)
