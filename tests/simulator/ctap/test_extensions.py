"""Extensions (CTAP 2.1 §12): hmac-secret, credProtect, credBlob, largeBlobKey, minPinLength."""

from __future__ import annotations

import os

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, LargeBlobs
from fido2.ctap2.pin import PinProtocol, PinProtocolV1, PinProtocolV2
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from .conftest import NYMI, REFERENCE

ERR = CtapError.ERR
PERM = ClientPin.PERMISSION
ES256 = [{"type": "public-key", "alg": -7}]
RP = "example.com"


def _make(band, user: bytes = b"u", **kw):  # type: ignore[no-untyped-def]
    return band.ctap2.make_credential(os.urandom(32), {"id": RP}, {"id": user}, ES256, **kw)


def _hmac_input(band, protocol: PinProtocol, salt: bytes) -> tuple[dict, bytes]:  # type: ignore[no-untyped-def]
    key_agreement = band.ctap2.client_pin(protocol.VERSION, ClientPin.CMD.GET_KEY_AGREEMENT)[1]
    platform_key, secret = protocol.encapsulate(key_agreement)
    salt_enc = protocol.encrypt(secret, salt)
    ext = {
        "hmac-secret": {
            1: platform_key,
            2: salt_enc,
            3: protocol.authenticate(secret, salt_enc),
            4: protocol.VERSION,
        }
    }
    return ext, secret


def _hmac(band, protocol, cred_id: bytes, salt: bytes, **kw) -> bytes:  # type: ignore[no-untyped-def]
    ext, secret = _hmac_input(band, protocol, salt)
    resp = band.ctap2.get_assertion(
        RP, os.urandom(32), [{"type": "public-key", "id": cred_id}], ext, **kw
    )
    return protocol.decrypt(secret, resp.auth_data.extensions["hmac-secret"])


@pytest.mark.parametrize("protocol_cls", [PinProtocolV1, PinProtocolV2])
def test_hmac_secret(make_band, protocol_cls: type[PinProtocol]) -> None:
    band = make_band(REFERENCE)
    protocol = protocol_cls()
    made = _make(band, extensions={"hmac-secret": True})
    assert made.auth_data.extensions == {"hmac-secret": True}
    cred = made.auth_data.credential_data.credential_id
    other = _make(band, b"v").auth_data.credential_data.credential_id
    salt = os.urandom(32)
    first = _hmac(band, protocol, cred, salt)
    assert len(first) == 32
    assert _hmac(band, protocol, cred, salt) == first  # same salt, same output
    assert _hmac(band, protocol, other, salt) != first  # per credential
    assert _hmac(band, protocol, cred, os.urandom(32)) != first
    two = _hmac(band, protocol, cred, salt + os.urandom(32))
    assert len(two) == 64 and two[:32] == first
    # With user verification the other CredRandom is used (§12.5: uv and non-uv differ).
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", PERM.GET_ASSERTION, RP)
    ext, secret = _hmac_input(band, protocol, salt)
    cdh = os.urandom(32)
    resp = band.ctap2.get_assertion(
        RP,
        cdh,
        [{"type": "public-key", "id": cred}],
        ext,
        pin_uv_param=protocol.authenticate(token, cdh),
        pin_uv_protocol=protocol.VERSION,
    )
    assert resp.auth_data.is_user_verified()
    with_uv = protocol.decrypt(secret, resp.auth_data.extensions["hmac-secret"])
    assert with_uv != first
    assert _hmac(band, protocol, cred, salt) == first  # without UV again: the old output


def test_hmac_secret_bad_salt_auth(make_band) -> None:
    band = make_band(REFERENCE)
    protocol = PinProtocolV2()
    cred = _make(band).auth_data.credential_data.credential_id
    ext, _secret = _hmac_input(band, protocol, os.urandom(32))
    ext["hmac-secret"][3] = bytes(32)
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": cred}], ext)
    assert exc.value.code == ERR.PIN_AUTH_INVALID


def test_prf_through_fido2_client(make_band) -> None:
    band = make_band(REFERENCE)
    client = Fido2Client(band.device, DefaultClientDataCollector("https://example.com"))
    server = Fido2Server(PublicKeyCredentialRpEntity(id=RP, name="Ex"))
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"u", name="u"),
        user_verification="discouraged",
        extensions={"prf": {}},
    )
    reg = client.make_credential(options.public_key)
    assert reg.client_extension_results.prf.enabled is True
    creds = [server.register_complete(state, reg).credential_data]
    outputs = []
    for _ in range(2):
        options, state = server.authenticate_begin(
            creds, user_verification="discouraged", extensions={"prf": {"eval": {"first": b"salt"}}}
        )
        resp = client.get_assertion(options.public_key).get_response(0)
        outputs.append(resp.client_extension_results.prf.results.first)
    assert outputs[0] == outputs[1] and len(outputs[0]) == 32


def test_cred_protect_levels(make_band) -> None:
    band = make_band(REFERENCE)
    level3 = _make(band, b"u3", options={"rk": True}, extensions={"credProtect": 3})
    assert level3.auth_data.extensions == {"credProtect": 3}
    level2 = _make(band, b"u2", options={"rk": True}, extensions={"credProtect": 2})
    level1 = _make(band, b"u1", options={"rk": True})
    assert level1.auth_data.extensions is None  # no unsolicited output
    ids = {
        n: c.auth_data.credential_data.credential_id
        for n, c in ((1, level1), (2, level2), (3, level3))
    }
    # Without UV and without an allowList only level 1 is discoverable.
    found = band.ctap2.get_assertions(RP, os.urandom(32))
    assert [a.credential["id"] for a in found] == [ids[1]]
    # With an allowList level 2 is usable, level 3 still needs UV.
    allow2 = [{"type": "public-key", "id": ids[2]}]
    band.ctap2.get_assertion(RP, os.urandom(32), allow2)
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": ids[3]}])
    assert exc.value.code == ERR.NO_CREDENTIALS
    # With UV (a PIN token) all three, newest first.
    protocol = PinProtocolV2()
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", PERM.GET_ASSERTION, RP)
    cdh = os.urandom(32)
    found = band.ctap2.get_assertions(
        RP, cdh, pin_uv_param=protocol.authenticate(token, cdh), pin_uv_protocol=2
    )
    assert [a.credential["id"] for a in found] == [ids[1], ids[2], ids[3]]
    assert found[0].number_of_credentials == 3
    assert all(a.user is not None and "id" in a.user for a in found)


def test_cred_protect_on_nymi_with_wrist_uv(make_band) -> None:
    band = make_band(NYMI)
    cred = _make(band, options={"rk": True, "uv": True}, extensions={"credProtect": 3})
    assert cred.auth_data.extensions == {"credProtect": 3}
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion(RP, os.urandom(32))
    assert exc.value.code == ERR.NO_CREDENTIALS
    assertion = band.ctap2.get_assertion(RP, os.urandom(32), options={"uv": True})
    assert assertion.credential["id"] == cred.auth_data.credential_data.credential_id


def test_cred_blob(make_band) -> None:
    band = make_band(REFERENCE)
    stored = _make(band, b"a", options={"rk": True}, extensions={"credBlob": b"hello"})
    assert stored.auth_data.extensions == {"credBlob": True}
    too_long = _make(band, b"b", options={"rk": True}, extensions={"credBlob": b"x" * 33})
    assert too_long.auth_data.extensions == {"credBlob": False}
    not_rk = _make(band, b"c", extensions={"credBlob": b"hello"})
    assert not_rk.auth_data.extensions == {"credBlob": False}
    cred_id = stored.auth_data.credential_data.credential_id
    resp = band.ctap2.get_assertion(
        RP, os.urandom(32), [{"type": "public-key", "id": cred_id}], {"credBlob": True}
    )
    assert resp.auth_data.extensions == {"credBlob": b"hello"}


def test_large_blob_key_and_large_blobs(make_band) -> None:
    band = make_band(REFERENCE)
    made = _make(band, options={"rk": True}, extensions={"largeBlobKey": True})
    key = made.large_blob_key
    assert key is not None and len(key) == 32
    with pytest.raises(CtapError) as exc:  # §12.3: only for discoverable credentials
        _make(band, b"v", extensions={"largeBlobKey": True})
    assert exc.value.code == ERR.INVALID_OPTION
    cred_id = made.auth_data.credential_data.credential_id
    resp = band.ctap2.get_assertion(
        RP, os.urandom(32), [{"type": "public-key", "id": cred_id}], {"largeBlobKey": True}
    )
    assert resp.large_blob_key == key
    blobs = LargeBlobs(band.ctap2)
    assert blobs.read_blob_array() == []
    data = os.urandom(10000)  # incompressible: two fragments of maxMsgSize - 64 bytes
    blobs.put_blob(key, data)
    assert blobs.get_blob(key) == data
    # Once a PIN is set, writing needs a token with the lbw permission (§6.10.2 step 5.e).
    protocol = PinProtocolV2()
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    with pytest.raises(CtapError) as exc:
        blobs.put_blob(key, b"new")
    assert exc.value.code == ERR.PUAT_REQUIRED
    token = pin.get_pin_token("1234", PERM.LARGE_BLOB_WRITE)
    LargeBlobs(band.ctap2, protocol, token).put_blob(key, b"new")
    assert LargeBlobs(band.ctap2).get_blob(key) == b"new"


def test_large_blob_integrity_and_sequence(make_band) -> None:
    band = make_band(REFERENCE)
    body = bytes.fromhex("80") + b"\x00" * 16  # an empty array with a wrong hash
    with pytest.raises(CtapError) as exc:
        band.ctap2.large_blobs(0, set=body, length=len(body))
    assert exc.value.code == ERR.INTEGRITY_FAILURE
    with pytest.raises(CtapError) as exc:
        band.ctap2.large_blobs(5, set=b"abc")
    assert exc.value.code == ERR.INVALID_SEQ
    with pytest.raises(CtapError) as exc:
        band.ctap2.large_blobs(
            0, set=b"a" * 20, length=band.auth.fixture.ctap.max_large_blob_array + 1
        )
    assert exc.value.code == ERR.LARGE_BLOB_STORAGE_FULL
    with pytest.raises(CtapError) as exc:
        band.ctap2.large_blobs(0, get=10, set=b"x")
    assert exc.value.code == ERR.INVALID_PARAMETER
    assert LargeBlobs(band.ctap2).read_blob_array() == []


def test_min_pin_length_extension(make_band) -> None:
    from fido2.ctap2 import Config

    band = make_band(REFERENCE)
    Config(band.ctap2).set_min_pin_length(6, rp_ids=[RP])
    made = _make(band, extensions={"minPinLength": True})
    assert made.auth_data.extensions == {"minPinLength": 6}
    other = band.ctap2.make_credential(
        os.urandom(32),
        {"id": "other.example"},
        {"id": b"u"},
        ES256,
        extensions={"minPinLength": True},
    )
    assert other.auth_data.extensions is None
