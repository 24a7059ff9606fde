"""The Nymi band's PIN/UV protocol 1 without a PIN: what its metadata implies.

The metadata lists hmac-secret (whose assertion half needs the key agreement of a PIN/UV auth
protocol) and credMgmt=true but no clientPin. The fixtures therefore list pinUvAuthProtocols [1]
and grant UV tokens from the wrist authentication ([I], `uv_token_unadvertised`): the key agreement
and getPinUvAuthTokenUsingUvWithPermissions are served, every PIN subcommand is not.
"""

from __future__ import annotations

import os

import cbor2
import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin, PinProtocolV1
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from nymi_device.fido import get_uv_token

from .conftest import NYMI, NYMI_FIXTURES

ERR = CtapError.ERR


class _Uv:
    def prompt_up(self) -> None:
        return None

    def request_pin(self, permissions: object, rp_id: object) -> None:
        return None

    def request_uv(self, permissions: object, rp_id: object) -> bool:
        return True


@pytest.mark.parametrize("fixture_id", NYMI_FIXTURES)
def test_fido2_client_registers_and_authenticates_with_wrist_uv(make_band, fixture_id: str) -> None:
    band = make_band(fixture_id)
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    client = Fido2Client(band.device, DefaultClientDataCollector("https://example.com"),
                         user_interaction=_Uv())
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"tw-user2", name="tw-user2"),
        user_verification="required", resident_key_requirement="required")
    auth_data = server.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.is_user_verified()
    options, state = server.authenticate_begin([auth_data.credential_data],
                                               user_verification="required")
    response = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [auth_data.credential_data], response)


@pytest.mark.parametrize("sub", [0x03, 0x04, 0x05, 0x09])  # setPIN, changePIN, getPinToken, ...UsingPin
def test_pin_subcommands_are_not_served(make_band, sub: int) -> None:
    band = make_band(NYMI)
    answer = band.cbor(b"\x06" + cbor2.dumps({1: 1, 2: sub}))
    assert answer == bytes((ERR.INVALID_SUBCOMMAND,))
    key_agreement = band.cbor(b"\x06" + cbor2.dumps({1: 1, 2: 0x02}))
    assert key_agreement[0] == 0 and 1 in cbor2.loads(key_agreement[1:])


def test_credential_management_with_a_uv_token_from_the_wrist(make_band) -> None:
    band = make_band(NYMI)
    band.ctap2.make_credential(os.urandom(32), {"id": "example.com"},
                               {"id": b"u1", "name": "tw-user2"},
                               [{"type": "public-key", "alg": -7}],
                               options={"rk": True, "uv": True})
    client_pin = ClientPin(band.ctap2, PinProtocolV1())
    token = get_uv_token(client_pin, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    credman = CredentialManagement(band.ctap2, client_pin.protocol, token)
    assert credman.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1
    rps = credman.enumerate_rps()
    assert rps[0][CredentialManagement.RESULT.RP]["id"] == "example.com"


def test_uv_token_needs_the_wrist(make_band, scripted) -> None:
    band = make_band(NYMI, scripted(verified=False))
    client_pin = ClientPin(band.ctap2, PinProtocolV1())
    with pytest.raises(CtapError) as refused:
        get_uv_token(client_pin, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    # CTAP 2.1 §6.5.5.7.3: built-in user verification failed (the band is not authenticated).
    assert refused.value.code == ERR.UV_INVALID


def test_hmac_secret_assertion_works_on_the_band(make_band) -> None:
    band = make_band(NYMI)
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    client = Fido2Client(band.device, DefaultClientDataCollector("https://example.com"),
                         user_interaction=_Uv())
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"u1", name="tw-user2"),
        user_verification="required", resident_key_requirement="required")
    registration = client.make_credential({**dict(options.public_key),
                                           "extensions": {"prf": {}}})
    assert registration.client_extension_results["prf"]["enabled"] is True
    auth_data = server.register_complete(state, registration)
    options, state = server.authenticate_begin([auth_data.credential_data],
                                               user_verification="required")
    salt = b"\x01" * 32
    outputs = []
    for _ in range(2):
        response = client.get_assertion({**dict(options.public_key), "extensions": {
            "prf": {"eval": {"first": salt}}}}).get_response(0)
        outputs.append(response.client_extension_results["prf"]["results"]["first"])
    assert outputs[0] == outputs[1] and len(websafe_decode(outputs[0])) == 32
