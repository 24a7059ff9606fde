"""Server-side rules the console and the CLI rely on: tap tasks on bands that are not active,
the console's Suspend, and the EAM registry's RFID / Wearable pair (DOMAIN 1.10, 3.4, 3.5, 5)."""

from __future__ import annotations

import pytest

from simulator.nes import Nes, NesRefusal, RefusalCode
from simulator.nes.models import EnrollmentDestination
from tests.nes.helpers import U1, U2, band, self_service, states


def test_tap_tasks_need_the_users_active_band(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    assert nes.check_tap("AAAH-00125", account=U2).serial == "AAAH-00125"
    nes.suspend("AAAH-00125")
    with pytest.raises(NesRefusal, match=r"AAAH-00125 .* not active") as refused:
        nes.check_tap("AAAH-00125", account=U2, task="FIDO2 sign-in")
    assert refused.value.code is RefusalCode.NOT_ACTIVE
    assert "FIDO2 sign-in" in str(refused.value)


def test_tap_tasks_refused_for_the_old_band_after_self_service(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    nes.enroll(U2, band("AAAH-00125"))
    nes.enroll(U1, band("ACAK-00056"))
    nes.enroll(U2, band("ACAK-00056"))
    assert states(nes, U2) == [("AAAH-00125", False, True), ("ACAK-00056", True, False)]
    with pytest.raises(NesRefusal, match="not active"):
        nes.check_tap("AAAH-00125")
    assert nes.check_tap("ACAK-00056", account=U2).is_active
    with pytest.raises(NesRefusal) as other:
        nes.check_tap("ACAK-00056", account=U1)
    assert other.value.code is RefusalCode.NOT_OWNER


def test_tap_tasks_refused_for_original_while_temporary_band_is_out(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    nes.issue_temporary_band("AAAH-00125")
    nes.enroll(U2, band("ACAK-00056"))
    with pytest.raises(NesRefusal, match="not active"):
        nes.check_tap("AAAH-00125", account=U2)
    nes.restore_original("AAAH-00125")
    assert nes.check_tap("AAAH-00125", account=U2).is_primary
    with pytest.raises(NesRefusal, match="not assigned"):
        nes.check_tap("ACAK-00056")


def test_the_consoles_suspend_also_ticks_is_primary(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    nes.replace_lost_band("AAAH-00125")
    assert states(nes, U2) == [("AAAH-00125", False, False)]
    nes.update_band("AAAH-00125", is_active=True)
    nes.suspend("AAAH-00125")
    assert states(nes, U2) == [("AAAH-00125", False, True)]


def _evidian(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.update_policy("Default Settings Set",
                      {"enrollment_destination": EnrollmentDestination.NES_AND_EVIDIAN})


def test_following_the_article_blacklist_and_delete_rfid_unblocks_reenrollment(
        nes: Nes) -> None:
    _evidian(nes)
    facts = band("AAAH-00125", secure_nfc=True, nfc_id="04A1B2C3D4E5F6")
    nes.enroll(U2, facts)
    rfid = next(e for e in nes.eam_entries(U2) if e.kind.value == "RFID")
    changed = nes.eam_blacklist(rfid.id)
    assert sorted(e.kind.value for e in changed) == ["RFID", "Wearable"]
    deleted = nes.eam_delete(rfid.id)
    assert deleted.kind.value == "RFID"
    kinds = {e.kind.value: e.state.value for e in nes.eam_entries(U2)}
    assert kinds == {"RFID": "deleted", "Wearable": "deleted", "Smart Card": "active"}
    # The second delete of the pair (as the return-a-band article does) changes nothing.
    wearable = next(e for e in nes.eam_entries(U2) if e.kind.value == "Wearable")
    assert nes.eam_delete(wearable.id).state.value == "deleted"
    assert nes.check_enrollment(U2, "AAAH-00125").allowed
    nes.enroll(U2, facts)


def test_an_eam_refusal_names_the_blocking_entry_and_its_real_state(nes: Nes) -> None:
    _evidian(nes)
    facts = band("AAAH-00125", secure_nfc=True, nfc_id="04A1B2C3D4E5F6")
    nes.enroll(U2, facts)
    wearable = next(e for e in nes.eam_entries(U2) if e.kind.value == "Wearable")
    check = nes.check_enrollment(U2, "AAAH-00125")
    assert not check.allowed and check.code == RefusalCode.EAM_ENTRY.value
    assert "RFID entry 04A1B2C3D4E5F6 (active)" in str(check.message)
    nes.eam_blacklist(wearable.id)
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, facts)
    assert "(blacklisted)" in str(refused.value) and "(active)" not in str(refused.value)
    assert "delete" in str(refused.value)
