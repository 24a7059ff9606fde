"""Enrollment, registration and self-service re-enrollment through the service layer, on both
backends: every rule and refusal of DOMAIN 2.7, 3.2-3.4 and 10.4 with its exact message."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator.nes import (
    OTHER_USER_MESSAGE,
    Action,
    EnrollmentDestination,
    Nes,
    NesConfig,
    NesConflict,
    NesRefusal,
    NotFoundName,
    OtherOwnerRefusal,
    PolicyStatus,
    RefusalCode,
)
from tests.nes.helpers import U1, U2, U3, band, self_service, states

NOT_FOUND_U2 = "A Nymi Band has been assigned to CORP\\tw-user2, however it cannot be found."


def test_first_enrollment(nes: Nes) -> None:
    result = nes.enroll(U2, band("AAAH-00125"), nba_version="1.16.0", label="TW-USER2")
    assert result.action is Action.FIRST
    assert states(nes, U2) == [("AAAH-00125", True, True)]
    row = nes.user(U2).bands[0]
    assert row.enrolled_at_nes == "nes" and row.label == "TW-USER2" and row.notes == ""
    assert nes.user(U2).first_name == "TW"  # imported from the directory
    assert nes.band("AAAH-00125").owner == U2
    assert nes.policy_status(U2) is PolicyStatus.ACTIVE


def test_domain_3_4_example(nes: Nes) -> None:
    """tw-user2 on AAAH-00125 self-enrolls to ACAK-00056, which belonged to another user."""
    self_service(nes, own=True, any_band=True)
    nes.enroll(U1, band("ACAK-00056"))
    nes.enroll(U2, band("AAAH-00125"))
    result = nes.enroll(U2, band("ACAK-00056"))
    assert result.action is Action.TAKE_OVER
    assert result.previous_owner == U1 and result.displaced_serial == "AAAH-00125"
    assert states(nes, U2) == [("AAAH-00125", False, True), ("ACAK-00056", True, False)]
    assert nes.user(U1).bands == ()
    assert nes.policy_status(U1) is PolicyStatus.NO_ACTIVE_BAND
    assert nes.band("ACAK-00056").owner == U2


def test_reenroll_own_band_lists_the_same_band(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.enroll(U2, band("AAAH-00125"))
    before = nes.user(U2).bands[0]
    result = nes.enroll(U2, band("AAAH-00125"))
    assert result.action is Action.REENROLL_OWN
    after = nes.user(U2).bands
    assert [(b.serial, b.is_active, b.is_primary) for b in after] == [("AAAH-00125", True, True)]
    assert after[0].created == before.created


def test_reenroll_own_band_without_self_service_is_refused(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("AAAH-00125"))
    assert str(refused.value) == NOT_FOUND_U2
    assert refused.value.code is RefusalCode.NOT_FOUND
    assert isinstance(refused.value, PermissionError)


def test_new_free_band_while_holding_an_active_band(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    with pytest.raises(NesRefusal, match="however it cannot be found"):
        nes.enroll(U2, band("ACAK-00056"))
    self_service(nes, own=True)
    result = nes.enroll(U2, band("ACAK-00056"))
    assert result.action is Action.SELF_SERVICE_FREE
    assert states(nes, U2) == [("AAAH-00125", False, True), ("ACAK-00056", True, False)]


@pytest.mark.parametrize("own", [False, True])
def test_band_of_another_user_is_refused_without_any(nes: Nes, own: bool) -> None:
    self_service(nes, own=own, any_band=False)
    nes.enroll(U1, band("ACAK-00056"))
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("ACAK-00056"))
    assert str(refused.value) == OTHER_USER_MESSAGE
    assert states(nes, U1) == [("ACAK-00056", True, True)]
    assert [u.account for u in nes.users()] == [U1]  # the refused request left nothing behind


def test_seos_band_of_another_user_is_refused_even_with_any(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    nes.enroll(U1, band("ACAK-00056", seos_enabled=True))
    nes.enroll(U2, band("AAAH-00125"))
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("ACAK-00056", seos_enabled=True))
    assert str(refused.value) == OTHER_USER_MESSAGE
    assert refused.value.code is RefusalCode.SEOS
    assert states(nes, U1) == [("ACAK-00056", True, True)]
    # The NBA might not report the SEOS flag: the NES remembers it.
    with pytest.raises(NesRefusal):
        nes.enroll(U2, band("ACAK-00056"))
    # The owner may re-enroll their own SEOS band; an administrator can free it.
    assert nes.enroll(U1, band("ACAK-00056", seos_enabled=True)).action is Action.REENROLL_OWN
    nes.disconnect("ACAK-00056")
    assert nes.enroll(U2, band("ACAK-00056", seos_enabled=True)).action is Action.SELF_SERVICE_FREE


@pytest.mark.parametrize(("name", "shown"), [(NotFoundName.BAND_OWNER, U1),
                                             (NotFoundName.REQUESTING_USER, U2)])
def test_not_found_message_names_the_configured_user(
        open_nes: Callable[..., Nes], name: NotFoundName, shown: str) -> None:
    nes = open_nes(config=NesConfig(other_owner_refusal=OtherOwnerRefusal.NOT_FOUND,
                                    not_found_name=name))
    nes.enroll(U1, band("ACAK-00056"))
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("ACAK-00056"))
    assert str(refused.value) == (
        f"A Nymi Band has been assigned to {shown}, however it cannot be found.")


def test_own_suspended_band_cannot_be_reactivated_by_self_service(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    nes.enroll(U2, band("AAAH-00125"))
    nes.suspend("AAAH-00125")
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, band("AAAH-00125"))
    assert refused.value.code is RefusalCode.NOT_ACTIVE
    assert states(nes, U2) == [("AAAH-00125", False, True)]


def test_check_enrollment_answers_without_writing(nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    audit_rows = len(nes.audit())
    check = nes.check_enrollment(U2, "ACAK-00056")
    assert not check.allowed and check.message == OTHER_USER_MESSAGE
    assert check.code == RefusalCode.OTHER_USER.value
    free = nes.check_enrollment(U3, "AAAH-00125")
    assert free.allowed and free.action is Action.FIRST and free.band_version == 0
    assert len(nes.audit()) == audit_rows


def test_stale_band_version_is_refused(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    seen = nes.check_enrollment(U2, "ACAK-00056").band_version
    nes.enroll(U1, band("ACAK-00056"))
    with pytest.raises(NesConflict, match="tap the band again"):
        nes.enroll(U2, band("ACAK-00056"), expected_band_version=seen)
    fresh = nes.check_enrollment(U2, "ACAK-00056")
    assert fresh.allowed and fresh.action is Action.TAKE_OVER
    nes.enroll(U2, band("ACAK-00056"), expected_band_version=fresh.band_version)
    assert nes.band("ACAK-00056").owner == U2


def test_enrollment_wipes_fido2_keys_of_the_band_but_registration_keeps_them(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.enroll(U2, band("AAAH-00125"))
    nes.record_fido2_key(U2, "AAAH-00125", "example.com", b"cred-1", b"\xa5cose")
    nes.register(U2, band("AAAH-00125"))
    assert len(nes.fido2_keys(U2)) == 1
    result = nes.enroll(U2, band("AAAH-00125"))
    assert result.fido2_keys_removed == 1 and nes.fido2_keys(U2) == []


def test_policy_status_pending_until_nba_sign_in(nes: Nes) -> None:
    assert nes.ensure_user(U2).policy_status is PolicyStatus.NO_ACTIVE_BAND
    nes.enroll(U2, band("AAAH-00125"), nba_version="1.16.0")
    assert nes.policy_status(U2) is PolicyStatus.ACTIVE
    nes.update_policy("Default Settings Set", {"Haptic Feedback on Nymi Bands": False})
    assert nes.policy_status(U2) is PolicyStatus.PENDING
    nes.set_individual_policy(U3, "Liveness Detection Disabled")
    assert nes.nba_sign_in(U2, "AAAH-00125") is PolicyStatus.ACTIVE
    nes.set_individual_policy(U2, "Corporate Credentials Authentication")
    assert nes.policy_status(U2) is PolicyStatus.PENDING
    assert not nes.band("AAAH-00125").has_external_authenticator
    assert nes.nba_sign_in(U2, "AAAH-00125") is PolicyStatus.ACTIVE
    assert nes.band("AAAH-00125").has_external_authenticator
    assert dict(nes.policy_statuses())[U2] is PolicyStatus.ACTIVE


def test_sign_in_with_a_band_that_is_not_yours_is_refused(nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    nes.ensure_user(U2)
    with pytest.raises(NesRefusal) as refused:
        nes.nba_sign_in(U2, "ACAK-00056")
    assert refused.value.code is RefusalCode.NOT_OWNER


def test_information_unavailable_for_old_nba(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"), nba_version="1.2.9")
    assert nes.policy_status(U2) is PolicyStatus.INFORMATION_UNAVAILABLE
    nes.nba_sign_in(U2, "AAAH-00125", nba_version="1.4.0")
    assert nes.policy_status(U2) is PolicyStatus.ACTIVE


def test_liveness_change_stays_pending_on_old_firmware(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125", liveness_configurable=False))
    nes.set_individual_policy(U2, "Liveness Detection Disabled")
    assert nes.nba_sign_in(U2, "AAAH-00125") is PolicyStatus.PENDING


def test_corporate_credentials_policy_writes_external_authenticator(nes: Nes) -> None:
    nes.ensure_user(U2)
    nes.set_individual_policy(U2, "Corporate Credentials Authentication")
    result = nes.enroll(U2, band("AAAH-00125"))
    assert result.settings.corporate_credentials
    assert nes.band("AAAH-00125").has_external_authenticator


def test_evidian_destination_writes_eam_entries(nes: Nes) -> None:
    nes.update_policy("Default Settings Set",
                      {"enrollment_destination": EnrollmentDestination.NES_AND_EVIDIAN})
    result = nes.enroll(U2, band("AAAH-00125", secure_nfc=True, nfc_id="04A1B2C3D4E5F6"))
    kinds = sorted((e.kind.value, e.identifier, e.state_label) for e in result.eam_entries)
    assert kinds == [("RFID", "04A1B2C3D4E5F6", "Active"),
                     ("Smart Card", "SC-04A1B2C3D4E5F6", "Active"),
                     ("Wearable", "04A1B2C3D4E5F6", "Active")]


def test_secure_nfc_reenroll_needs_rfid_entry_blacklisted_and_deleted(nes: Nes) -> None:
    self_service(nes, own=True)
    nes.update_policy("Default Settings Set", {"Enrollment destination": "NES and Evidian"})
    facts = band("AAAH-00125", secure_nfc=True, nfc_id="04A1B2C3D4E5F6")
    nes.enroll(U2, facts)
    with pytest.raises(NesRefusal) as refused:
        nes.enroll(U2, facts)
    assert refused.value.code is RefusalCode.EAM_ENTRY
    assert "blacklist and delete the band's RFID entry" in str(refused.value)
    wearable = next(e for e in nes.eam_entries(U2) if e.kind.value == "Wearable")
    nes.eam_blacklist(wearable.id)
    with pytest.raises(NesRefusal, match="blacklisted"):
        nes.enroll(U2, facts)
    for entry in nes.eam_entries(U2):
        if entry.kind.value in ("RFID", "Wearable"):
            nes.eam_delete(entry.id)
    assert nes.enroll(U2, facts).action is Action.REENROLL_OWN


def test_registration_records_both_servers_names(nes: Nes) -> None:
    result = nes.register(U2, band("AAAH-00125"), enrolled_at_nes="enrollment")
    row = result.user.bands[0]
    assert (row.enrolled_at_nes, row.registered_at_nes) == ("enrollment", "nes")
    with pytest.raises(NesRefusal, match="however it cannot be found"):
        nes.register(U2, band("AAAH-00125"))


def test_unknown_user_and_bad_input(nes: Nes) -> None:
    from simulator.nes import NesInvalidInput, NotFound
    with pytest.raises(NotFound):
        nes.enroll("CORP\\nobody", band("AAAH-00125"))
    with pytest.raises(NesInvalidInput):
        nes.enroll(U2, band("aaah-125"))
    with pytest.raises(NesInvalidInput):
        nes.enroll(U2, band("AAAH-00125"), label="THIRTEEN-CHAR")
    with pytest.raises(ValueError):
        nes.enroll(U2, band("AAAH-00125").__class__("AAAH-00125", device_id=" "))
