"""Registration and authentication end to end: python-fido2 client, server and attestation."""

from __future__ import annotations

import os

import pytest
from fido2.attestation import AttestationVerifier, PackedAttestation, verify_x509_chain
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestationObject,
    AuthenticatorAttestationResponse,
    AuthenticatorData,
    CollectedClientData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    RegistrationResponse,
)

from .conftest import NYMI, NYMI_FIXTURES, REFERENCE, reopen, simulation_root_der

ORIGIN = "https://example.com"
RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")
USER = PublicKeyCredentialUserEntity(id=b"user-1", name="alice", display_name="Alice")


class SimulationRoot(AttestationVerifier):
    """Trusts exactly the committed simulation root."""

    def ca_lookup(self, attestation_result, auth_data):  # type: ignore[no-untyped-def]
        return simulation_root_der()


def _server(**kw: object) -> Fido2Server:
    return Fido2Server(RP, attestation="direct", verify_attestation=SimulationRoot(), **kw)  # type: ignore[arg-type]


def _client(band) -> Fido2Client:  # type: ignore[no-untyped-def]
    return Fido2Client(band.device, DefaultClientDataCollector(ORIGIN))


@pytest.mark.parametrize("resident", ["discouraged", "required"])
def test_register_and_authenticate_on_reference(make_band, resident: str) -> None:
    band = make_band(REFERENCE)
    server, client = _server(), _client(band)
    options, state = server.register_begin(
        USER, user_verification="discouraged", resident_key_requirement=resident
    )
    registration = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, registration)  # attestation chain verified
    assert auth_data.is_user_present() and not auth_data.is_user_verified()
    assert auth_data.counter == 0
    assert registration.response.attestation_object.fmt == "packed"
    credentials = [auth_data.credential_data]
    counters = []
    for _ in range(3):
        options, state = server.authenticate_begin(
            credentials if resident == "discouraged" else None, user_verification="discouraged"
        )
        response = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, credentials, response)  # signature verified
        assert response.response.authenticator_data.is_user_present()
        counters.append(response.response.authenticator_data.counter)
        if resident == "required":
            assert response.response.user_handle == USER.id
    assert counters == sorted(counters) and len(set(counters)) == 3


def test_eddsa_credential_on_reference(make_band) -> None:
    band = make_band(REFERENCE)
    server = Fido2Server(RP, attestation="direct", verify_attestation=SimulationRoot())
    server.allowed_algorithms = [p for p in server.allowed_algorithms if p.alg == -8]
    client = _client(band)
    options, state = server.register_begin(USER, user_verification="discouraged")
    auth_data = server.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.credential_data.public_key[3] == -8
    options, state = server.authenticate_begin(
        [auth_data.credential_data], user_verification="discouraged"
    )
    response = client.get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, [auth_data.credential_data], response)


def test_attestation_statement_verifies_with_packed_and_trust_path(make_band) -> None:
    band = make_band(REFERENCE)
    cdh = os.urandom(32)
    resp = band.ctap2.make_credential(
        cdh, {"id": "example.com"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
    )
    result = PackedAttestation().verify(resp.att_stmt, resp.auth_data, cdh)
    verify_x509_chain([*result.trust_path, simulation_root_der()])
    assert resp.auth_data.credential_data.aaguid == bytes.fromhex(
        "6e796d6962616e642d72656632312e30"
    )


@pytest.mark.parametrize("fixture_id", NYMI_FIXTURES)
def test_nymi_registration_and_authentication(make_band, fixture_id: str) -> None:
    # python-fido2 2.2.1's Fido2Client builds a ClientPin whenever it wants UV, which needs a
    # PIN/UV protocol; the real band lists none, so registration goes through Ctap2 directly
    # (what Windows does with "uv": true) and the server checks the result.
    band = make_band(fixture_id)
    server = _server()
    options, state = server.register_begin(USER, user_verification="required")
    client_data = CollectedClientData.create(
        type="webauthn.create", challenge=options.public_key.challenge, origin=ORIGIN
    )
    att = band.ctap2.make_credential(
        client_data.hash,
        {"id": RP.id, "name": RP.name},
        {"id": USER.id, "name": USER.name},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True, "uv": True},
    )
    registration = RegistrationResponse(
        raw_id=att.auth_data.credential_data.credential_id,
        response=AuthenticatorAttestationResponse(
            client_data=client_data,
            attestation_object=AttestationObject.create(att.fmt, att.auth_data, att.att_stmt),
        ),
    )
    auth_data = server.register_complete(state, registration)
    assert auth_data.flags & AuthenticatorData.FLAG.UP and auth_data.is_user_verified()
    assert auth_data.credential_data.aaguid == bytes.fromhex("0acf3011bc60f375fb536f05f43154e0")
    # Authentication through Fido2Client (no UV asked: no ClientPin needed).
    credentials = [auth_data.credential_data]
    options, state = server.authenticate_begin(credentials, user_verification="discouraged")
    response = _client(band).get_assertion(options.public_key).get_response(0)
    server.authenticate_complete(state, credentials, response)
    assert response.response.authenticator_data.is_user_present()
    # With "uv": the band's wrist authentication is the user verification.
    assertion = band.ctap2.get_assertion(RP.id, os.urandom(32), options={"uv": True})
    assert assertion.auth_data.is_user_verified() and assertion.auth_data.is_user_present()
    assert assertion.user == {"id": USER.id}


def test_counters_persist_across_restart(make_band) -> None:
    band = make_band(NYMI, durable=True)
    cred = band.ctap2.make_credential(
        os.urandom(32),
        {"id": "example.com"},
        {"id": b"u"},
        [{"type": "public-key", "alg": -7}],
        options={"uv": True},
    ).auth_data.credential_data
    allow = [{"type": "public-key", "id": cred.credential_id}]
    seen = []
    for _ in range(5):
        seen.append(
            band.ctap2.get_assertion("example.com", os.urandom(32), allow).auth_data.counter
        )
    band2 = reopen(band)
    for _ in range(5):
        seen.append(
            band2.ctap2.get_assertion("example.com", os.urandom(32), allow).auth_data.counter
        )
    band2.storage.close()
    assert all(a < b for a, b in zip(seen, seen[1:], strict=False)), seen
    assert seen[0] == 1


def test_counter_ceiling_is_written_once_per_block(make_band) -> None:
    band = make_band(REFERENCE, ctap={"counter_reserve": 16})
    cred = band.ctap2.make_credential(
        os.urandom(32), {"id": "example.com"}, {"id": b"u"}, [{"type": "public-key", "alg": -7}]
    ).auth_data.credential_data
    allow = [{"type": "public-key", "id": cred.credential_id}]
    writes = []
    original = band.storage.put

    def counting_put(key: str, value: bytes) -> None:
        writes.append(key)
        original(key, value)

    band.storage.put = counting_put  # type: ignore[method-assign]
    reserve = band.auth.fixture.ctap.counter_reserve
    for _ in range(reserve + 2):
        band.ctap2.get_assertion("example.com", os.urandom(32), allow)
    assert len(writes) == 2 and all(k.startswith("user/ctap/ctr/") for k in writes)
