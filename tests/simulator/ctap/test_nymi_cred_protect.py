"""credProtect on a Nymi band: the wrist authentication is the user verification (§12.1).

A platform checks which allowList entries a band holds with a silent getAssertion (``up``
false, no ``uv``) before the real one; python-fido2 does this on every assertion. On a Nymi
band no credential is touched unless its wearer is authenticated on the wrist by fingerprint,
so a userVerificationRequired credential is applicable there; the real assertion then asks for
``uv`` and gets the UV flag. An authenticator whose UV is a separate step (the reference band)
still hides such a credential from a request without UV.
"""

from __future__ import annotations

import os

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import CtapError
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from .conftest import NYMI_FIXTURES, REFERENCE

UV_REQUIRED = 3


class _WristUv(UserInteraction):
    def request_uv(self, permissions: object, rp_id: object) -> bool:
        return True


@pytest.mark.parametrize("fixture_id", NYMI_FIXTURES)
def test_uv_required_credential_with_fido2_client(make_band, fixture_id: str) -> None:
    band = make_band(fixture_id)
    server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
    client = Fido2Client(band.device, DefaultClientDataCollector("https://example.com"),
                         user_interaction=_WristUv())
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=b"tw-user2", name="tw-user2"),
        user_verification="required")
    registration = client.make_credential({**dict(options.public_key), "extensions": {
        "credentialProtectionPolicy": "userVerificationRequired"}})
    auth_data = server.register_complete(state, registration)
    assert auth_data.extensions == {"credProtect": UV_REQUIRED}
    options, state = server.authenticate_begin([auth_data.credential_data],
                                               user_verification="required")
    response = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [auth_data.credential_data], response)
    assert response.response.authenticator_data.is_user_verified()


def test_reference_band_hides_uv_required_credentials_without_uv(make_band) -> None:
    band = make_band(REFERENCE)
    made = band.ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u"},
                                      [{"type": "public-key", "alg": -7}],
                                      extensions={"credProtect": UV_REQUIRED})
    cred = made.auth_data.credential_data.credential_id
    with pytest.raises(CtapError) as hidden:
        band.ctap2.get_assertion("example.com", os.urandom(32),
                                 [{"type": "public-key", "id": cred}], options={"up": False})
    assert hidden.value.code == CtapError.ERR.NO_CREDENTIALS
