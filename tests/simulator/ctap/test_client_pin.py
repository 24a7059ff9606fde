"""authenticatorClientPIN with PIN/UV auth protocols 1 and 2 (CTAP 2.1 §6.5)."""

from __future__ import annotations

import os

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin
from fido2.ctap2.pin import PinProtocol, PinProtocolV1, PinProtocolV2

from .conftest import REFERENCE, reopen

ERR = CtapError.ERR
PERM = ClientPin.PERMISSION
ES256 = [{"type": "public-key", "alg": -7}]


@pytest.fixture(params=[PinProtocolV1, PinProtocolV2], ids=["protocol1", "protocol2"])
def protocol(request: pytest.FixtureRequest) -> PinProtocol:
    return request.param()


def _mc(band, protocol: PinProtocol, token: bytes, rp: str = "example.com", **kw):  # type: ignore[no-untyped-def]
    cdh = os.urandom(32)
    return band.ctap2.make_credential(
        cdh,
        {"id": rp},
        {"id": b"u", "name": "u"},
        ES256,
        pin_uv_param=protocol.authenticate(token, cdh),
        pin_uv_protocol=protocol.VERSION,
        **kw,
    )


def _ga(band, protocol: PinProtocol, token: bytes, rp: str, allow, up: bool = True):  # type: ignore[no-untyped-def]
    cdh = os.urandom(32)
    return band.ctap2.get_assertion(
        rp,
        cdh,
        allow,
        options={"up": up},
        pin_uv_param=protocol.authenticate(token, cdh),
        pin_uv_protocol=protocol.VERSION,
    )


def test_set_change_and_get_tokens(make_band, protocol: PinProtocol) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, protocol)
    with pytest.raises(CtapError) as no_pin:  # no PIN, no retries to count
        pin.get_pin_retries()
    assert no_pin.value.code == CtapError.ERR.PIN_NOT_SET
    pin.set_pin("1234")
    assert pin.get_pin_retries() == (8, False)
    assert band.ctap2.get_info().options["clientPin"] is True
    token = pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL, "example.com")
    resp = _mc(band, protocol, token)
    assert resp.auth_data.is_user_verified() and resp.auth_data.is_user_present()
    # setPIN again: a PIN is already set (§6.5.5.5 step 3).
    with pytest.raises(CtapError) as exc:
        pin.set_pin("9999")
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    pin.change_pin("1234", "56789")
    with pytest.raises(CtapError) as exc:
        pin.get_pin_token("1234", PERM.GET_ASSERTION)
    assert exc.value.code == ERR.PIN_INVALID
    # The legacy getPinToken (0x05) carries the default mc+ga permissions.
    legacy = pin.get_pin_token("56789")
    _mc(band, protocol, legacy)


def test_wrong_pins_block_until_power_cycle_but_keep_the_counter(make_band, protocol) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    for expected in (ERR.PIN_INVALID, ERR.PIN_INVALID, ERR.PIN_AUTH_BLOCKED):
        with pytest.raises(CtapError) as exc:
            pin.get_pin_token("0000", PERM.GET_ASSERTION)
        assert exc.value.code == expected
    # Blocked: even the right PIN is refused, and no retry is spent.
    with pytest.raises(CtapError) as exc:
        pin.get_pin_token("1234", PERM.GET_ASSERTION)
    assert exc.value.code == ERR.PIN_AUTH_BLOCKED
    assert pin.get_pin_retries() == (5, True)
    band.auth.power_cycle()
    assert pin.get_pin_retries() == (5, False)  # the block lifts, the counter stays
    pin.get_pin_token("1234", PERM.GET_ASSERTION)
    assert pin.get_pin_retries() == (8, False)


def test_pin_blocked_after_all_retries_and_persisted(make_band, protocol) -> None:
    band = make_band(REFERENCE)
    ClientPin(band.ctap2, protocol).set_pin("1234")
    codes = []
    for attempt in range(8):
        if attempt and attempt % 3 == 0:
            band.auth.power_cycle()
        try:
            ClientPin(band.ctap2, protocol).get_pin_token("0000", PERM.GET_ASSERTION)
        except CtapError as exc:
            codes.append(exc.code)
    assert codes[-1] == ERR.PIN_BLOCKED
    band2 = reopen(band)
    pin2 = ClientPin(band2.ctap2, protocol)
    assert pin2.get_pin_retries()[0] == 0
    with pytest.raises(CtapError) as exc:
        pin2.get_pin_token("1234", PERM.GET_ASSERTION)
    assert exc.value.code == ERR.PIN_BLOCKED
    band2.storage.close()


def test_permissions_and_rp_binding(make_band, protocol) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    cred = _mc(band, protocol, pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL, "example.com"))
    other = _mc(
        band,
        protocol,
        pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL, "other.example"),
        rp="other.example",
    )
    allow = [{"type": "public-key", "id": cred.auth_data.credential_data.credential_id}]
    allow_other = [{"type": "public-key", "id": other.auth_data.credential_data.credential_id}]
    # A token without the mc permission cannot make a credential.
    ga_token = pin.get_pin_token("1234", PERM.GET_ASSERTION)
    with pytest.raises(CtapError) as exc:
        _mc(band, protocol, ga_token)
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    # A token bound to example.com is refused for other.example.
    bound = pin.get_pin_token("1234", PERM.GET_ASSERTION, "example.com")
    with pytest.raises(CtapError) as exc:
        _ga(band, protocol, bound, "other.example", allow_other, up=False)
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    # A token without an RP ID is bound by its first use.
    free = pin.get_pin_token("1234", PERM.GET_ASSERTION)
    first = _ga(band, protocol, free, "example.com", allow, up=False)
    assert first.auth_data.is_user_verified() and not first.auth_data.is_user_present()
    with pytest.raises(CtapError) as exc:
        _ga(band, protocol, free, "other.example", allow_other, up=False)
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    # With "up", the use consumes the token's mc/ga permissions (§6.2.2 step 9.d).
    used = pin.get_pin_token("1234", PERM.GET_ASSERTION, "example.com")
    _ga(band, protocol, used, "example.com", allow)
    with pytest.raises(CtapError) as exc:
        _ga(band, protocol, used, "example.com", allow)
    assert exc.value.code == ERR.PIN_AUTH_INVALID


def test_unauthorized_permission_and_zero_permissions(make_band, protocol) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    # bioEnroll is present (false) on the reference, so "be" is allowed with a PIN; a token
    # with no permission at all is an invalid parameter (§6.5.5.7.2 step 3).
    with pytest.raises(CtapError) as exc:
        pin.get_pin_token("1234", PERM(0))
    assert exc.value.code == ERR.INVALID_PARAMETER


def test_uv_needed_once_a_pin_is_set(make_band, protocol) -> None:
    band = make_band(REFERENCE)
    ClientPin(band.ctap2, protocol).set_pin("1234")
    # makeCredUvNotRqd: a non-discoverable credential needs no UV ...
    plain = band.ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256)
    assert not plain.auth_data.is_user_verified()
    # ... a discoverable one does (§6.1.2 step 7): CTAP2_ERR_PUAT_REQUIRED.
    with pytest.raises(CtapError) as exc:
        band.ctap2.make_credential(
            os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256, options={"rk": True}
        )
    assert exc.value.code == ERR.PUAT_REQUIRED


def test_zero_length_pin_uv_auth_param(make_band, protocol) -> None:
    band = make_band(REFERENCE)

    def probe() -> int:
        with pytest.raises(CtapError) as exc:
            band.ctap2.make_credential(
                os.urandom(32),
                {"id": "example.com"},
                {"id": b"u"},
                ES256,
                pin_uv_param=b"",
                pin_uv_protocol=protocol.VERSION,
            )
        return int(exc.value.code)

    assert probe() == ERR.PIN_NOT_SET  # §6.1.2 step 1, no PIN yet
    ClientPin(band.ctap2, protocol).set_pin("1234")
    assert probe() == ERR.PIN_INVALID


def test_pin_policy_minimum_length(make_band) -> None:
    band = make_band(REFERENCE)
    protocol = PinProtocolV2()
    key_agreement = band.ctap2.client_pin(2, ClientPin.CMD.GET_KEY_AGREEMENT)[1]
    platform_key, secret = protocol.encapsulate(key_agreement)
    padded = b"123".ljust(64, b"\0")
    enc = protocol.encrypt(secret, padded)
    with pytest.raises(CtapError) as exc:
        band.ctap2.client_pin(
            2,
            ClientPin.CMD.SET_PIN,
            key_agreement=platform_key,
            new_pin_enc=enc,
            pin_uv_param=protocol.authenticate(secret, enc),
        )
    assert exc.value.code == ERR.PIN_POLICY_VIOLATION
    assert band.ctap2.get_info().options["clientPin"] is False


def test_client_pin_parameter_errors(make_band) -> None:
    band = make_band(REFERENCE)

    def status(params: dict) -> int:
        return band.cbor(b"\x06" + cbor2.dumps(params))[0]

    assert status({1: 3, 2: 2}) == ERR.INVALID_PARAMETER  # unknown protocol
    assert status({2: 2}) == ERR.MISSING_PARAMETER  # getKeyAgreement needs the protocol
    assert status({1: 2, 2: 8}) == ERR.INVALID_SUBCOMMAND
    assert status({1: 2}) == ERR.MISSING_PARAMETER  # no subCommand
    assert status({1: 2, 2: "x"}) == ERR.CBOR_UNEXPECTED_TYPE
    assert status({1: 2, 2: 3}) == ERR.MISSING_PARAMETER  # setPIN without its parameters


def test_token_expires_and_power_cycle_ends_it(make_band, protocol) -> None:
    band = make_band(REFERENCE)
    pin = ClientPin(band.ctap2, protocol)
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL)
    band.clock.advance(31)  # unused for longer than the initial usage limit (§6.5.2.1)
    with pytest.raises(CtapError) as exc:
        _mc(band, protocol, token)
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    token = pin.get_pin_token("1234", PERM.MAKE_CREDENTIAL)
    band.auth.power_cycle()
    with pytest.raises(CtapError) as exc:
        _mc(band, protocol, token)
    assert exc.value.code == ERR.PIN_AUTH_INVALID
