"""CTAP1/U2F raw messages through python-fido2's Ctap1 (U2F Raw Message Formats v1.2)."""

from __future__ import annotations

import hashlib
import os

import pytest
from cryptography import x509
from fido2.ctap1 import ApduError, Ctap1

from simulator.band.ctap import PresenceResult

from .conftest import NYMI, REFERENCE, simulation_root_der

APP = hashlib.sha256(b"https://example.com").digest()


@pytest.mark.parametrize("fixture_id", [REFERENCE, NYMI])
def test_register_and_authenticate(make_band, fixture_id: str) -> None:
    band = make_band(fixture_id)
    ctap1 = Ctap1(band.device)
    assert ctap1.get_version() == "U2F_V2"
    challenge = os.urandom(32)
    reg = ctap1.register(challenge, APP)
    reg.verify(APP, challenge)  # attestation signature with the batch certificate
    cert = x509.load_der_x509_certificate(reg.certificate)
    root = x509.load_der_x509_certificate(simulation_root_der())
    cert.verify_directly_issued_by(root)
    counters = []
    for _ in range(3):
        challenge = os.urandom(32)
        sig = ctap1.authenticate(challenge, APP, reg.key_handle)
        sig.verify(APP, challenge, reg.public_key)
        assert sig.user_presence == 1
        counters.append(sig.counter)
    assert counters == sorted(set(counters))
    # check-only: the key handle is ours → 6985; another application's → 6A80.
    with pytest.raises(ApduError) as exc:
        ctap1.authenticate(os.urandom(32), APP, reg.key_handle, check_only=True)
    assert exc.value.code == 0x6985
    with pytest.raises(ApduError) as exc:
        ctap1.authenticate(os.urandom(32), os.urandom(32), reg.key_handle)
    assert exc.value.code == 0x6A80


def test_status_words(make_band, scripted) -> None:
    band = make_band(REFERENCE, scripted(presence=[PresenceResult.DENIED]))
    auth = band.auth
    header = bytes((0x00, 0x01, 0x00, 0x00))
    # No presence on register: 6985 conditions not satisfied.
    assert auth.process_u2f(header + b"\x00\x00\x40" + os.urandom(64)) == b"\x69\x85"
    # Wrong data length for register: 6700.
    assert auth.process_u2f(header + b"\x00\x00\x10" + os.urandom(16)) == b"\x67\x00"
    # Lc disagrees with the data: 6700.
    assert auth.process_u2f(header + b"\x00\x00\x40" + os.urandom(10)) == b"\x67\x00"
    assert auth.process_u2f(b"\x00\x01") == b"\x67\x00"
    # Unknown INS: 6D00; CLA other than 00: 6E00.
    assert auth.process_u2f(bytes((0x00, 0x44, 0, 0))) == b"\x6d\x00"
    assert auth.process_u2f(bytes((0x80, 0x03, 0, 0))) == b"\x6e\x00"
    # Bad key handle: 6A80; bad control byte: 6A86.
    body = os.urandom(64) + b"\x10" + os.urandom(16)
    assert auth.process_u2f(bytes((0, 2, 3, 0, len(body))) + body) == b"\x6a\x80"
    assert auth.process_u2f(bytes((0, 2, 9, 0, len(body))) + body) == b"\x6a\x86"
    # Short-form version request.
    assert auth.process_u2f(bytes((0, 3, 0, 0))) == b"U2F_V2\x90\x00"


def test_dont_enforce_presence_and_shared_credential(make_band) -> None:
    band = make_band(REFERENCE)
    ctap1 = Ctap1(band.device)
    reg = ctap1.register(os.urandom(32), APP)
    challenge = os.urandom(32)
    data = challenge + APP + bytes((len(reg.key_handle),)) + reg.key_handle
    resp = band.auth.process_u2f(bytes((0, 2, 8, 0, len(data))) + data)
    assert resp[-2:] == b"\x90\x00" and resp[0] == 0  # signed without user presence
    # The U2F credential answers a CTAP2 getAssertion whose rpIdHash is the application
    # parameter (CTAP 2.1 §10.2); here that is the hash of the string "https://example.com".
    counter = int.from_bytes(resp[1:5], "big")
    assertion = band.ctap2.get_assertion(
        "https://example.com", os.urandom(32), [{"type": "public-key", "id": reg.key_handle}]
    )
    assert assertion.auth_data.rp_id_hash == APP
    assert assertion.auth_data.counter > counter
