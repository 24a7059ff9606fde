"""The Evidian-style EAM registry (DOMAIN 5) and FIDO2 security keys per user and band."""

from __future__ import annotations

import pytest

from simulator.nes import EamKind, EamState, Nes, NesConflict, NesRefusal, NotFound, RefusalCode
from tests.nes.helpers import U1, U2, band, self_service


def _evidian(nes: Nes) -> None:
    nes.update_policy("Default Settings Set", {"enrollment_destination": "nes-and-evidian"})


def _by_kind(nes: Nes, account: str) -> dict[EamKind, tuple[EamState, str]]:
    return {e.kind: (e.state, e.state_label) for e in nes.eam_entries(account)}


def test_returning_a_band_walks_every_entry_to_deleted(nes: Nes) -> None:
    """DOMAIN 5: blacklist the Wearable (which blacklists both), delete both, blacklist the
    smart card ("Old Card"), delete it."""
    _evidian(nes)
    nes.enroll(U2, band("AAAH-00125", secure_nfc=True, nfc_id="04AABBCCDDEEFF"))
    entries = {e.kind: e for e in nes.eam_entries(U2)}
    assert {k: v[0] for k, v in _by_kind(nes, U2).items()} == {
        EamKind.RFID: EamState.ACTIVE, EamKind.WEARABLE: EamState.ACTIVE,
        EamKind.SMART_CARD: EamState.ACTIVE}

    changed = nes.eam_blacklist(entries[EamKind.WEARABLE].id)
    assert {e.kind for e in changed} == {EamKind.RFID, EamKind.WEARABLE}
    with pytest.raises(NesConflict, match="only an active entry"):
        nes.eam_blacklist(entries[EamKind.RFID].id)
    with pytest.raises(NesConflict, match="blacklist it before deleting it"):
        nes.eam_delete(entries[EamKind.SMART_CARD].id)
    nes.eam_delete(entries[EamKind.RFID].id)
    nes.eam_delete(entries[EamKind.WEARABLE].id)
    nes.eam_blacklist(entries[EamKind.SMART_CARD].id)
    assert _by_kind(nes, U2)[EamKind.SMART_CARD] == (EamState.BLACKLISTED, "Old Card")
    nes.eam_delete(entries[EamKind.SMART_CARD].id)
    assert {v for v in _by_kind(nes, U2).values()} == {(EamState.DELETED, "Deleted")}
    assert nes.eam_entries(U2, include_deleted=False) == []
    with pytest.raises(NotFound):
        nes.eam_blacklist(999999)


def test_blacklisting_rfid_takes_the_wearable_with_it(nes: Nes) -> None:
    """The RFID and Wearable entries are one pair (DOMAIN 5): either one blacklists both."""
    _evidian(nes)
    nes.enroll(U2, band("AAAH-00125", nfc_id="04AABBCCDDEEFF"))
    assert EamKind.SMART_CARD not in _by_kind(nes, U2)  # not a Secure NFC band
    rfid = next(e for e in nes.eam_entries(U2) if e.kind is EamKind.RFID)
    assert {e.kind for e in nes.eam_blacklist(rfid.id)} == {EamKind.RFID, EamKind.WEARABLE}
    assert _by_kind(nes, U2)[EamKind.WEARABLE][0] is EamState.BLACKLISTED


def test_no_eam_entries_with_the_default_destination(nes: Nes) -> None:
    assert nes.enroll(U2, band("AAAH-00125", secure_nfc=True)).eam_entries == ()
    assert nes.eam_entries(U2) == []


def test_fido2_keys_per_user_and_band(nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    key = nes.record_fido2_key(U2, "AAAH-00125", "login.example.com", b"\x01" * 32,
                               b"\xa5\x01\x02")
    assert (key.account, key.serial, key.rp_id) == (U2, "AAAH-00125", "login.example.com")
    assert key.to_json()["credential_id"] == "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE"
    assert [k.credential_id for k in nes.fido2_keys(U2)] == [b"\x01" * 32]
    assert [k.rp_id for k in nes.fido2_keys(serial="AAAH-00125")] == ["login.example.com"]
    with pytest.raises(NesConflict, match="already recorded"):
        nes.record_fido2_key(U2, "AAAH-00125", "other.example", b"\x01" * 32, b"\xa5")
    nes.delete_fido2_key(b"\x01" * 32)
    assert nes.fido2_keys(U2) == []


def test_fido2_key_only_on_the_users_active_band(nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    nes.enroll(U2, band("AAAH-00125"))
    with pytest.raises(NesRefusal) as refused:
        nes.record_fido2_key(U2, "ACAK-00056", "example.com", b"c", b"k")
    assert refused.value.code is RefusalCode.NOT_OWNER
    nes.suspend("AAAH-00125")
    with pytest.raises(NesRefusal):
        nes.record_fido2_key(U2, "AAAH-00125", "example.com", b"c", b"k")


def test_new_band_needs_the_key_created_again(nes: Nes) -> None:
    """DOMAIN 3.4 step 4: after self-service to another band, the key is re-created there."""
    self_service(nes, own=True, any_band=True)
    nes.enroll(U1, band("ACAK-00056"))
    nes.record_fido2_key(U1, "ACAK-00056", "example.com", b"u1-key", b"k")
    nes.enroll(U2, band("AAAH-00125"))
    nes.record_fido2_key(U2, "AAAH-00125", "example.com", b"u2-old", b"k")
    result = nes.enroll(U2, band("ACAK-00056"))
    assert result.fido2_keys_removed == 1  # the previous owner's key went with the wipe
    assert nes.fido2_keys(U1) == []
    assert [k.serial for k in nes.fido2_keys(U2)] == ["AAAH-00125"]
    nes.record_fido2_key(U2, "ACAK-00056", "example.com", b"u2-new", b"k")
    assert sorted(k.serial for k in nes.fido2_keys(U2)) == ["AAAH-00125", "ACAK-00056"]
