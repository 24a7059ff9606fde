"""authenticatorCredentialManagement (CTAP 2.1 §6.8) through python-fido2."""

from __future__ import annotations

import hashlib
import os

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, CredentialManagement
from fido2.ctap2.pin import PinProtocolV2

from .conftest import REFERENCE

ERR = CtapError.ERR
PERM = ClientPin.PERMISSION
CM = CredentialManagement


def _register(band, rp: str, user_id: bytes, name: str, token_pin: ClientPin):  # type: ignore[no-untyped-def]
    protocol = token_pin.protocol
    token = token_pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL, rp)
    cdh = os.urandom(32)
    return band.ctap2.make_credential(
        cdh,
        {"id": rp, "name": rp.upper()},
        {"id": user_id, "name": name, "displayName": name.title()},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
        pin_uv_param=protocol.authenticate(token, cdh),
        pin_uv_protocol=protocol.VERSION,
    ).auth_data.credential_data


def test_metadata_enumerate_update_delete(make_band) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, PinProtocolV2())
    pin.set_pin("1234")
    a1 = _register(band, "a.example", b"u1", "ann", pin)
    _register(band, "a.example", b"u2", "bob", pin)
    _register(band, "b.example", b"u3", "cat", pin)
    token = pin.get_pin_token("1234", PERM.CREDENTIAL_MGMT)
    cm = CredentialManagement(band.ctap2, pin.protocol, token)
    meta = cm.get_metadata()
    assert meta[CM.RESULT.EXISTING_CRED_COUNT] == 3
    assert meta[CM.RESULT.MAX_REMAINING_COUNT] == 97
    rps = cm.enumerate_rps()
    assert sorted(r[CM.RESULT.RP]["id"] for r in rps) == ["a.example", "b.example"]
    assert rps[0][CM.RESULT.TOTAL_RPS] == 2
    for r in rps:
        assert r[CM.RESULT.RP_ID_HASH] == hashlib.sha256(r[CM.RESULT.RP]["id"].encode()).digest()
    creds = cm.enumerate_creds(hashlib.sha256(b"a.example").digest())
    assert {c[CM.RESULT.USER]["name"] for c in creds} == {"ann", "bob"}
    assert creds[0][CM.RESULT.TOTAL_CREDENTIALS] == 2
    assert all(c[CM.RESULT.CRED_PROTECT] == 1 for c in creds)
    assert all(c[CM.RESULT.PUBLIC_KEY][3] == -7 for c in creds)
    # updateUserInformation: same user ID, new names.
    cid = {"type": "public-key", "id": a1.credential_id}
    cm.update_user_info(cid, {"id": b"u1", "name": "annie", "displayName": "Annie"})
    names = {
        c[CM.RESULT.USER]["name"] for c in cm.enumerate_creds(hashlib.sha256(b"a.example").digest())
    }
    assert names == {"annie", "bob"}
    with pytest.raises(CtapError) as exc:
        cm.update_user_info(cid, {"id": b"someone-else", "name": "x"})
    assert exc.value.code == ERR.INVALID_PARAMETER
    # delete: gone from enumeration and from assertions.
    cm.delete_cred(cid)
    assert cm.get_metadata()[CM.RESULT.EXISTING_CRED_COUNT] == 2
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion("a.example", os.urandom(32), [cid], options={"up": False})
    assert exc.value.code == ERR.NO_CREDENTIALS
    with pytest.raises(CtapError) as exc:
        cm.delete_cred(cid)
    assert exc.value.code == ERR.NO_CREDENTIALS
    assert cm.enumerate_creds(hashlib.sha256(b"nobody.example").digest()) == []


def test_credential_management_needs_a_cm_token(make_band) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, PinProtocolV2())
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", PERM.GET_ASSERTION)
    with pytest.raises(CtapError) as exc:
        CredentialManagement(band.ctap2, pin.protocol, token).get_metadata()
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    # A cm token bound to an RP cannot read the metadata of all RPs.
    bound = pin.get_pin_token("1234", PERM.CREDENTIAL_MGMT, "a.example")
    with pytest.raises(CtapError) as exc:
        CredentialManagement(band.ctap2, pin.protocol, bound).get_metadata()
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    # Without any pinUvAuthParam: CTAP2_ERR_PUAT_REQUIRED.
    assert band.cbor(b"\x0a" + cbor2.dumps({1: 1})) == bytes((ERR.PUAT_REQUIRED,))
    # Unknown subcommand.
    assert band.cbor(b"\x0a" + cbor2.dumps({1: 9})) == bytes((ERR.INVALID_SUBCOMMAND,))


def test_prototype_command_0x41(make_band) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, PinProtocolV2())
    pin.set_pin("1234")
    _register(band, "a.example", b"u1", "ann", pin)
    token = pin.get_pin_token("1234", PERM.CREDENTIAL_MGMT)
    message = b"\x01"
    param = pin.protocol.authenticate(token, message)
    raw = band.cbor(b"\x41" + cbor2.dumps({1: 1, 3: 2, 4: param}))
    assert raw[0] == 0 and cbor2.loads(raw[1:]) == {1: 1, 2: 99}
    # updateUserInformation was not part of the prototype.
    assert band.cbor(b"\x41" + cbor2.dumps({1: 7, 3: 2, 4: param})) == bytes(
        (ERR.INVALID_SUBCOMMAND,)
    )


def test_enumeration_state_is_dropped_by_another_command(make_band) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, PinProtocolV2())
    pin.set_pin("1234")
    _register(band, "a.example", b"u1", "ann", pin)
    _register(band, "b.example", b"u2", "bob", pin)
    cm = CredentialManagement(
        band.ctap2, pin.protocol, pin.get_pin_token("1234", PERM.CREDENTIAL_MGMT)
    )
    assert cm.enumerate_rps_begin()[CM.RESULT.TOTAL_RPS] == 2
    band.ctap2.get_info()
    with pytest.raises(CtapError) as exc:
        cm.enumerate_rps_next()
    assert exc.value.code == ERR.NOT_ALLOWED
