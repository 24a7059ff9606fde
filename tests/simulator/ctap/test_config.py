"""authenticatorConfig (CTAP 2.1 §6.11): alwaysUv, minimum PIN length, forcePINChange."""

from __future__ import annotations

import os

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Config
from fido2.ctap2.pin import PinProtocolV2

from .conftest import REFERENCE

ERR = CtapError.ERR
PERM = ClientPin.PERMISSION
ES256 = [{"type": "public-key", "alg": -7}]


def test_toggle_always_uv(make_band) -> None:
    band = make_band(REFERENCE)
    Config(band.ctap2).toggle_always_uv()  # not protected yet: no token needed
    info = band.ctap2.get_info()
    assert info.options["alwaysUv"] is True and info.options["makeCredUvNotRqd"] is False
    # alwaysUv on an unprotected authenticator that supports clientPin: PUAT_REQUIRED (§6.1.2
    # step 6.2.1).
    with pytest.raises(CtapError) as exc:
        band.ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256)
    assert exc.value.code == ERR.PUAT_REQUIRED
    protocol = PinProtocolV2()
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL | PERM.AUTHENTICATOR_CFG)
    cdh = os.urandom(32)
    made = band.ctap2.make_credential(
        cdh,
        {"id": "example.com"},
        {"id": b"u"},
        ES256,
        pin_uv_param=protocol.authenticate(token, cdh),
        pin_uv_protocol=2,
    )
    assert made.auth_data.is_user_verified()
    # Now protected: toggling needs a token with acfg.
    with pytest.raises(CtapError) as exc:
        Config(band.ctap2).toggle_always_uv()
    assert exc.value.code == ERR.PUAT_REQUIRED
    token = pin.get_pin_token("1234", PERM.AUTHENTICATOR_CFG)
    Config(band.ctap2, protocol, token).toggle_always_uv()
    assert band.ctap2.get_info().options["alwaysUv"] is False


def test_min_pin_length_and_force_change(make_band) -> None:
    band = make_band(REFERENCE)
    Config(band.ctap2).set_min_pin_length(6)
    assert band.ctap2.get_info().min_pin_length == 6
    protocol = PinProtocolV2()
    pin = ClientPin(band.ctap2, protocol)
    with pytest.raises(CtapError) as exc:
        pin.set_pin("12345")
    assert exc.value.code == ERR.PIN_POLICY_VIOLATION
    pin.set_pin("123456")
    token = pin.get_pin_token("1234" + "56", PERM.AUTHENTICATOR_CFG)
    config = Config(band.ctap2, protocol, token)
    with pytest.raises(CtapError) as exc:  # the minimum never decreases (§7.4)
        config.set_min_pin_length(4)
    assert exc.value.code == ERR.PIN_POLICY_VIOLATION
    config.set_min_pin_length(8)  # longer than the PIN: forcePINChange
    assert band.ctap2.get_info().force_pin_change is True
    with pytest.raises(CtapError) as exc:
        pin.get_pin_token("123456", PERM.GET_ASSERTION)
    assert exc.value.code == ERR.PIN_POLICY_VIOLATION
    pin.change_pin("123456", "12345678")
    assert band.ctap2.get_info().force_pin_change is False
    pin.get_pin_token("12345678", PERM.GET_ASSERTION)


def test_unsupported_config_subcommands(make_band) -> None:
    band = make_band(REFERENCE)
    # Enterprise attestation is not a feature of the model.
    assert band.cbor(b"\x0d" + cbor2.dumps({1: 1})) == bytes((ERR.INVALID_SUBCOMMAND,))
    assert band.cbor(b"\x0d" + cbor2.dumps({1: 0xFF})) == bytes((ERR.INVALID_SUBCOMMAND,))
    assert band.cbor(b"\x0d" + cbor2.dumps({2: {}})) == bytes((ERR.MISSING_PARAMETER,))
