"""Administrator actions on bands (DOMAIN 1.10, 3.5) and the invariants of DOMAIN 10.4, held
by the database itself whatever the caller."""

from __future__ import annotations

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.exc import IntegrityError

from simulator.nes import Action, Nes, NesConflict, NotFound, PolicyStatus
from simulator.nes.models import Assignment, Band, User
from tests.nes.helpers import U1, U2, U3, band, states


def test_suspend_clears_is_active(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    view = nes.suspend("AAAH-00125", notes="Suspended by IT")
    assert [(b.serial, b.is_active, b.is_primary, b.notes) for b in view.bands] == [
        ("AAAH-00125", False, True, "Suspended by IT")]
    assert view.policy_status is PolicyStatus.NO_ACTIVE_BAND


def test_disconnect_deletes_the_association_and_keeps_the_band(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    nes.record_fido2_key(U2, "AAAH-00125", "example.com", b"cred", b"cose")
    former = nes.disconnect("AAAH-00125")
    assert former.account == U2 and former.bands == ()
    assert nes.band("AAAH-00125").owner is None
    assert nes.fido2_keys(U2) == []
    with pytest.raises(NotFound, match="not assigned to anyone"):
        nes.disconnect("AAAH-00125")


def test_replace_lost_band(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    nes.replace_lost_band("AAAH-00125")
    assert nes.user(U2).band("AAAH-00125").notes == "Lost Band"
    assert nes.enroll(U2, band("ACAK-00056")).action is Action.FIRST
    assert states(nes, U2) == [("AAAH-00125", False, False), ("ACAK-00056", True, True)]


def test_temporary_band_and_restore(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    nes.issue_temporary_band("AAAH-00125")
    nes.enroll(U2, band("AAAH-00999"))
    assert states(nes, U2) == [("AAAH-00125", False, True), ("AAAH-00999", True, False)]
    restored = nes.restore_original("AAAH-00125")
    assert [(b.serial, b.is_active, b.is_primary) for b in restored.bands] == [
        ("AAAH-00125", True, True)]
    assert nes.band("AAAH-00999").owner is None
    with pytest.raises(NesConflict, match="already the active band"):
        nes.restore_original("AAAH-00125")


def test_reassign(nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    result = nes.reassign("ACAK-00056", U3)
    assert result.previous_owner is None and result.action is Action.FIRST
    assert nes.user(U1).bands == ()
    assert states(nes, U3) == [("ACAK-00056", True, True)]


def test_reactivating_a_second_band_is_refused(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    nes.issue_temporary_band("AAAH-00125")
    nes.enroll(U2, band("AAAH-00999"))
    with pytest.raises(NesConflict, match="one active Nymi Band per user"):
        nes.update_band("AAAH-00125", is_active=True)
    assert states(nes, U2) == [("AAAH-00125", False, True), ("AAAH-00999", True, False)]


def test_update_band_fields(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    view = nes.update_band("AAAH-00125", is_primary=False, notes="checked")
    assert view.band("AAAH-00125").notes == "checked"
    assert not view.band("AAAH-00125").is_primary


def test_unknown_band(nes: Nes) -> None:
    with pytest.raises(NotFound) as err:
        nes.suspend("ZZZZ-00000")
    assert str(err.value) == "no Nymi Band ZZZZ-00000 in this NES"
    assert isinstance(err.value, LookupError)


def _two_users_and_bands(nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    nes.enroll(U2, band("AAAH-00125"))


def test_database_refuses_a_second_owner_for_a_band(nes: Nes) -> None:
    _two_users_and_bands(nes)

    def sneak(s):
        band_id = s.scalar(select(Band.id).where(Band.serial == "ACAK-00056"))
        user_id = s.scalar(select(User.id).where(User.username == "tw-user2"))
        s.execute(insert(Assignment).values(band_id=band_id, user_id=user_id, is_active=False,
                                            is_primary=False, notes="", created_at=s.info["now"]))
    with pytest.raises(NesConflict) as err:
        nes.db.write(sneak, actor="test")
    assert isinstance(err.value.__cause__, IntegrityError)


def test_database_refuses_a_second_active_band_for_a_user(nes: Nes) -> None:
    self_service_free = band("AAAH-00999")
    nes.enroll(U2, band("AAAH-00125"))
    nes.suspend("AAAH-00125")
    nes.enroll(U2, self_service_free)

    def sneak(s):
        s.execute(update(Assignment).values(is_active=True))
    with pytest.raises(NesConflict) as err:
        nes.db.write(sneak, actor="test")
    assert isinstance(err.value.__cause__, IntegrityError)
    assert states(nes, U2) == [("AAAH-00125", False, True), ("AAAH-00999", True, False)]
