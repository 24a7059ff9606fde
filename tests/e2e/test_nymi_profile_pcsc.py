"""The Nymi profile the way a relying party meets a real band: python-fido2's ``Fido2Client``
and ``Fido2Server`` against a worn, enrolled ``nymi-band-3.0`` on a PC/SC reader (pcscd + vpcd).

Registration and assertion with user verification (the wrist authentication), PRF over
hmac-secret, credProtect, and credential management (list, delete) with the UV token the wrist
grants. python-fido2's own device suite cannot judge this profile: it refuses any authenticator
whose getInfo says ``uv: true``, as an enrolled band's does.
"""

from __future__ import annotations

import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.ctap2 import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin, PinProtocolV1
from fido2.pcsc import CtapPcscDevice
from fido2.server import Fido2Server
from fido2.utils import websafe_decode
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from nymi_device.fido import get_uv_token
from simulator.fleet import Fleet
from simulator.pcscd import PcscdHandle
from tests.e2e.conformance import Row, record
from tests.e2e.serve_helpers import serve

FIXTURE = "nymi-band-3.0"
SERIAL = "AAAH-00125"
SLOT = 1
READER = f"Virtual PCD 00 {SLOT:02d}"
RP = PublicKeyCredentialRpEntity(id="portal.example.com", name="Portal")
CRED_PROTECT_UV_REQUIRED = 3


class WristUv(UserInteraction):
    """The wearer is verified by the band itself: nothing to ask, UV is the wrist."""

    def request_uv(self, permissions: Any, rp_id: Any) -> bool:
        return True


def _device(timeout: float = 15.0) -> CtapPcscDevice:
    from smartcard.Exceptions import CardConnectionException, NoCardException
    from smartcard.System import readers

    deadline = time.monotonic() + timeout
    while True:
        found = [r for r in readers() if str(r) == READER]
        try:
            if found:
                return CtapPcscDevice(found[0].createConnection(), READER)
        except (NoCardException, CardConnectionException, ValueError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"no band on {READER!r} within {timeout:g} s")
        time.sleep(0.2)


def test_nymi_profile_with_fido2_client_and_server(tmp_path: Path, pcscd: PcscdHandle) -> None:
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band(FIXTURE, SERIAL)
    with serve(fleet.root, SERIAL, "--vpcd", "--tap", SERIAL, "--auto-presence",
               "--slot", str(SLOT)):
        device = _device()
        try:
            _profile(device)
        finally:
            device.close(release=True)
    record(Row("Nymi profile: `Fido2Client` + `Fido2Server`", version("fido2"),
               "NFC (pcscd + vpcd)", FIXTURE,
               "register + assert with UV, PRF / hmac-secret, credProtect, credMgmt list + "
               "delete with the wrist's UV token: pass",
               "tests/e2e/test_nymi_profile_pcsc.py"))


def _profile(device: CtapPcscDevice) -> None:
    info = Ctap2(device).get_info()
    assert info.options.get("uv") is True  # enrolled and worn: the wrist is the UV
    server = Fido2Server(RP)
    client = Fido2Client(device, DefaultClientDataCollector(f"https://{RP.id}"),
                         user_interaction=WristUv())
    user = PublicKeyCredentialUserEntity(id=b"tw-user2", name="tw-user2")
    options, state = server.register_begin(user, user_verification="required",
                                           resident_key_requirement="required")
    registration = client.make_credential({**dict(options.public_key), "extensions": {
        "credentialProtectionPolicy": "userVerificationRequired",
        "enforceCredentialProtectionPolicy": True, "prf": {}}})
    assert registration.client_extension_results["prf"]["enabled"] is True
    auth_data = server.register_complete(state, registration)
    assert auth_data.is_user_verified() and auth_data.is_user_present()
    assert auth_data.extensions == {"credProtect": CRED_PROTECT_UV_REQUIRED,
                                    "hmac-secret": True}
    credential = auth_data.credential_data
    assert credential is not None

    outputs = []
    for salt in (b"\x01" * 32, b"\x01" * 32, b"\x02" * 32):
        options, state = server.authenticate_begin([credential], user_verification="required")
        response = client.get_assertion({**dict(options.public_key), "extensions": {
            "prf": {"eval": {"first": salt}}}}).get_response(0)
        server.authenticate_complete(state, [credential], response)
        assert response.response.authenticator_data.is_user_verified()
        outputs.append(websafe_decode(response.client_extension_results["prf"]["results"]["first"]))
    assert outputs[0] == outputs[1] != outputs[2] and len(outputs[0]) == 32

    client_pin = ClientPin(Ctap2(device), PinProtocolV1())
    token = get_uv_token(client_pin, ClientPin.PERMISSION.CREDENTIAL_MGMT)
    credman = CredentialManagement(Ctap2(device), client_pin.protocol, token)
    rps = credman.enumerate_rps()
    assert [rp[CredentialManagement.RESULT.RP]["id"] for rp in rps] == [RP.id]
    creds = credman.enumerate_creds(rps[0][CredentialManagement.RESULT.RP_ID_HASH])
    assert [c[CredentialManagement.RESULT.USER]["id"] for c in creds] == [b"tw-user2"]
    assert creds[0][CredentialManagement.RESULT.CRED_PROTECT] == CRED_PROTECT_UV_REQUIRED
    credman.delete_cred(creds[0][CredentialManagement.RESULT.CREDENTIAL_ID])
    assert credman.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 0

    options, state = server.authenticate_begin([credential], user_verification="required")
    with pytest.raises(Exception) as gone:
        client.get_assertion(options.public_key)
    assert isinstance(gone.value.__cause__ or gone.value, CtapError) or "NO_CREDENTIALS" in str(
        gone.value)
