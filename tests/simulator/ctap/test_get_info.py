"""authenticatorGetInfo per fixture, and what each model refuses (CTAP 2.1 §6.4, §8.2)."""

from __future__ import annotations

import hashlib
import os

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2

from .conftest import NYMI_FIXTURES, REFERENCE

ERR = CtapError.ERR


@pytest.mark.parametrize("fixture_id", NYMI_FIXTURES)
def test_nymi_get_info_is_exactly_the_real_band(make_band, fixture_id: str) -> None:
    band = make_band(fixture_id)
    raw = band.cbor(b"\x04")
    assert raw[0] == 0x00
    info = cbor2.loads(raw[1:])
    assert info == {
        0x01: ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE"],
        0x02: ["credProtect", "hmac-secret"],
        0x03: bytes.fromhex("0acf3011bc60f375fb536f05f43154e0"),
        0x04: {"plat": False, "rk": True, "up": False, "uv": True, "credMgmt": True},
        0x05: 1200,
        0x06: [1],
        0x07: 20,
        0x08: 128,
        0x09: ["nfc"],
        0x0A: [{"alg": -7, "type": "public-key"}],
    }
    # python-fido2 accepts it (it checks canonical CBOR on every answer).
    parsed = band.ctap2.info
    assert "clientPin" not in parsed.options and parsed.pin_uv_protocols == [1]


def test_reference_get_info_lists_the_full_set(make_band) -> None:
    info = make_band(REFERENCE).ctap2.info
    assert info.versions == ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE", "FIDO_2_1"]
    assert set(info.extensions) == {
        "credProtect",
        "hmac-secret",
        "credBlob",
        "largeBlobKey",
        "minPinLength",
    }
    assert info.pin_uv_protocols == [2, 1]
    for option in ("clientPin", "uv", "bioEnroll", "alwaysUv"):
        assert info.options[option] is False  # supported, not configured yet
    for option in ("credMgmt", "authnrCfg", "largeBlobs", "pinUvAuthToken", "setMinPINLength"):
        assert info.options[option] is True
    assert [a["alg"] for a in info.algorithms] == [-7, -8]
    assert info.max_msg_size == 7609 and info.max_cred_blob_length == 32
    assert info.max_large_blob >= 1024 and info.remaining_disc_creds == 100
    assert info.uv_modality == 0x02  # fingerprint_internal


@pytest.mark.parametrize(
    "command",
    [0x09, 0x0B, 0x0C, 0x0D, 0x40, 0x03, 0x05, 0x0E, 0x20, 0x42, 0xFF],
    ids=lambda c: f"0x{c:02x}",
)
def test_nymi_refuses_commands_it_does_not_serve(make_band, command: int) -> None:
    # bio (0x09/0x40), selection (a FIDO_2_1 command), largeBlobs, config, and
    # undefined bytes: CTAP1_ERR_INVALID_COMMAND.
    band = make_band(NYMI_FIXTURES[0])
    assert band.cbor(bytes((command,)) + cbor2.dumps({1: 1})) == bytes((ERR.INVALID_COMMAND,))
    assert band.cbor(bytes((command,))) == bytes((ERR.INVALID_COMMAND,))


@pytest.mark.parametrize("command", [0x0A, 0x41])
def test_nymi_serves_credential_management_and_its_prototype(make_band, command: int) -> None:
    band = make_band(NYMI_FIXTURES[0])
    # getCredsMetadata without pinUvAuthParam: the command exists, the token is missing.
    assert band.cbor(bytes((command,)) + cbor2.dumps({1: 1})) == bytes((ERR.PUAT_REQUIRED,))
    # enumerateRPsGetNextRP without a preceding begin.
    assert band.cbor(bytes((command,)) + cbor2.dumps({1: 3})) == bytes((ERR.NOT_ALLOWED,))


def test_reference_serves_every_command(make_band) -> None:
    band = make_band(REFERENCE)
    assert band.auth.supported_commands == {
        0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x40, 0x41,
    }  # fmt: skip


def _mc(band, options=None, extra=None):
    cdh = os.urandom(32)
    params = {
        1: cdh,
        2: {"id": "example.com"},
        3: {"id": b"u1", "name": "u"},
        4: [{"type": "public-key", "alg": -7}],
    }
    if options is not None:
        params[7] = options
    params.update(extra or {})
    return band.cbor(b"\x01" + cbor2.dumps(params))


def test_unsupported_and_invalid_options(make_band) -> None:
    nymi = make_band(NYMI_FIXTURES[0])
    ref = make_band(REFERENCE)
    # getAssertion never takes "rk" (§6.2.2 step 4.4): CTAP2_ERR_UNSUPPORTED_OPTION.
    ga = {1: "example.com", 2: os.urandom(32), 5: {"rk": True}}
    assert nymi.cbor(b"\x02" + cbor2.dumps(ga)) == bytes((ERR.UNSUPPORTED_OPTION,))
    # "up": false on makeCredential (§6.1.2 step 5.6): CTAP2_ERR_INVALID_OPTION.
    assert _mc(nymi, {"up": False, "uv": True}) == bytes((ERR.INVALID_OPTION,))
    # "uv": true while built-in UV is not configured (§6.1.2 step 5.3): INVALID_OPTION.
    assert _mc(ref, {"uv": True}) == bytes((ERR.INVALID_OPTION,))
    # An algorithm the model lacks (EdDSA on the Nymi band): UNSUPPORTED_ALGORITHM.
    assert nymi.cbor(
        b"\x01"
        + cbor2.dumps(
            {
                1: os.urandom(32),
                2: {"id": "example.com"},
                3: {"id": b"u1"},
                4: [{"type": "public-key", "alg": -8}],
                7: {"uv": True},
            }
        )
    ) == bytes((ERR.UNSUPPORTED_ALGORITHM,))
    # Enterprise attestation is not a feature of these models (§6.1.2 step 9).
    assert _mc(ref, None, {10: 1}) == bytes((ERR.INVALID_PARAMETER,))


def test_rk_option_without_rk_support_is_unsupported(make_band) -> None:
    from .conftest import fixture_with

    options = dict(fixture_with(REFERENCE).ctap.options)
    del options["rk"]
    band = make_band(REFERENCE, ctap={"options": options})
    params = {
        1: os.urandom(32),
        2: {"id": "example.com"},
        3: {"id": b"u1"},
        4: [{"type": "public-key", "alg": -7}],
        7: {"rk": False},
    }
    # §6.1.2 step 5.4.1: "rk" present but absent from getInfo → CTAP2_ERR_UNSUPPORTED_OPTION.
    assert band.cbor(b"\x01" + cbor2.dumps(params)) == bytes((ERR.UNSUPPORTED_OPTION,))


def test_get_info_takes_no_parameters(make_band) -> None:
    band = make_band(REFERENCE)
    assert band.cbor(b"\x04\xa0") == bytes((ERR.INVALID_LENGTH,))


def test_selection_on_reference(make_band, scripted) -> None:
    from simulator.band.ctap import PresenceResult

    band = make_band(
        REFERENCE,
        scripted(presence=[PresenceResult.GRANTED, PresenceResult.DENIED, PresenceResult.TIMEOUT]),
    )
    assert band.cbor(b"\x0b") == b"\x00"
    assert band.cbor(b"\x0b") == bytes((ERR.OPERATION_DENIED,))
    assert band.cbor(b"\x0b") == bytes((ERR.USER_ACTION_TIMEOUT,))
    Ctap2(band.device)  # python-fido2 is happy with the device


def test_rp_id_hash_in_authenticator_data(make_band) -> None:
    band = make_band(REFERENCE)
    resp = band.ctap2.make_credential(
        os.urandom(32), {"id": "example.com"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
    )
    assert resp.auth_data.rp_id_hash == hashlib.sha256(b"example.com").digest()
