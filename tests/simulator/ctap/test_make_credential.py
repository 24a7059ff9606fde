"""makeCredential and getNextAssertion details (CTAP 2.1 §6.1.2, §6.3)."""

from __future__ import annotations

import os

import pytest
from fido2.attestation import AttestationType, PackedAttestation
from fido2.ctap import CtapError

from .conftest import NYMI, REFERENCE

ERR = CtapError.ERR
ES256 = [{"type": "public-key", "alg": -7}]
RP = "example.com"


def _make(band, user: bytes = b"u", **kw):  # type: ignore[no-untyped-def]
    return band.ctap2.make_credential(os.urandom(32), {"id": RP}, {"id": user}, ES256, **kw)


def test_exclude_list(make_band) -> None:
    band = make_band(REFERENCE)
    cred = _make(band).auth_data.credential_data.credential_id
    with pytest.raises(CtapError) as exc:
        _make(band, exclude_list=[{"type": "public-key", "id": cred}])
    assert exc.value.code == ERR.CREDENTIAL_EXCLUDED
    # A credential of another RP, or not ours at all, does not exclude.
    _make(band, exclude_list=[{"type": "public-key", "id": os.urandom(63)}])


def test_discoverable_credential_is_replaced_for_the_same_user(make_band) -> None:
    band = make_band(REFERENCE)
    first = _make(band, options={"rk": True}).auth_data.credential_data.credential_id
    second = _make(band, options={"rk": True}).auth_data.credential_data.credential_id
    assert band.ctap2.get_info().remaining_disc_creds == 99
    found = band.ctap2.get_assertions(RP, os.urandom(32))
    assert [a.credential["id"] for a in found] == [second]
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": first}])
    assert exc.value.code == ERR.NO_CREDENTIALS


def test_key_store_full(make_band) -> None:
    band = make_band(REFERENCE, ctap={"resident_credential_slots": 2})
    _make(band, b"a", options={"rk": True})
    _make(band, b"b", options={"rk": True})
    with pytest.raises(CtapError) as exc:
        _make(band, b"c", options={"rk": True})
    assert exc.value.code == ERR.KEY_STORE_FULL
    _make(band, b"c")  # non-discoverable credentials take no slot


def test_self_attestation_without_batch_material(make_band) -> None:
    band = make_band(REFERENCE, ctap={"attestation_key": None, "attestation_certificate": None})
    cdh = os.urandom(32)
    resp = band.ctap2.make_credential(cdh, {"id": RP}, {"id": b"u"}, ES256)
    assert "x5c" not in resp.att_stmt
    result = PackedAttestation().verify(resp.att_stmt, resp.auth_data, cdh)
    assert result.attestation_type == AttestationType.SELF


def test_get_next_assertion(make_band) -> None:
    band = make_band(NYMI)
    ids = [
        _make(band, user, options={"rk": True, "uv": True}).auth_data.credential_data.credential_id
        for user in (b"a", b"b", b"c")
    ]
    first = band.ctap2.get_assertion(RP, os.urandom(32), options={"uv": True})
    assert first.number_of_credentials == 3
    assert first.credential["id"] == ids[2]  # most recently created first
    second = band.ctap2.get_next_assertion()
    assert second.credential["id"] == ids[1] and second.auth_data.is_user_verified()
    band.clock.advance(31)  # the remembered state expires after 30 s (§6.3 step 3)
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_next_assertion()
    assert exc.value.code == ERR.NOT_ALLOWED
    band.ctap2.get_assertions(RP, os.urandom(32), options={"uv": True})
    with pytest.raises(CtapError) as exc:  # all three returned: nothing left
        band.ctap2.get_next_assertion()
    assert exc.value.code == ERR.NOT_ALLOWED


def test_user_details_only_after_uv_with_several_accounts(make_band) -> None:
    band = make_band(REFERENCE)
    for user in (b"a", b"b"):
        band.ctap2.make_credential(
            os.urandom(32),
            {"id": RP},
            {"id": user, "name": user.decode(), "displayName": user.decode().upper()},
            ES256,
            options={"rk": True},
        )
    found = band.ctap2.get_assertions(RP, os.urandom(32))
    assert [a.user for a in found] == [{"id": b"b"}, {"id": b"a"}]  # no UV: IDs only
