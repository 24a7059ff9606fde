#!/usr/bin/env python3
"""Make the SIMULATED band identity authority used by the management protocol's secure session.

The management protocol (docs/protocol.md §7) has every band prove who it is by signing the
handshake with a per-band *identity key*, vouched for by an X.509 certificate from the
manufacturer. Simulated bands get theirs from a simulation authority, written once by this script
into ``firmware_fixtures/attestation/`` and committed:

* ``band-identity-root-ca.pem``        the root a host trusts (CA, pathLen 1). Its private key
  signs the issuing CA during this run and is then discarded.
* ``band-identity-issuing-ca.pem``     the issuing CA (CA, pathLen 0), signed by the root.
* ``band-identity-issuing-ca-key.pem`` its private key (PKCS#8, P-256). The simulator issues each
  band's identity certificate with it when the band is provisioned
  (:mod:`simulator.band.management_identity`).

Every name carries "SIMULATED - not a real authority". This authority is separate from the FIDO
attestation root (``simulation-root-ca.pem``, made by ``make_simulation_ca.py``): a FIDO batch
certificate is not a band identity, and trusting one root must not imply trusting the other.

Usage: ``.venv/bin/python scripts/make_band_identity_ca.py [--force]``
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
OUT_DIR = ROOT / "firmware_fixtures" / "attestation"
ROOT_FILE = "band-identity-root-ca.pem"
ISSUING_FILE = "band-identity-issuing-ca.pem"
ISSUING_KEY_FILE = "band-identity-issuing-ca-key.pem"
ORGANIZATION = "nymi-band-stack SIMULATION"
COUNTRY = "CA"
UNIT = "SIMULATED - not a real authority"
ROOT_CN = "SIMULATED Band Identity Root CA - not a real authority"
ISSUING_CN = "SIMULATED Band Identity Issuing CA - not a real authority"
NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, UNIT),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _ca_key_usage() -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=False,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=True,
        crl_sign=True,
        encipher_only=False,
        decipher_only=False,
    )


def make_ca(
    cn: str,
    path_length: int,
    issuer: tuple[ec.EllipticCurvePrivateKey, x509.Certificate] | None,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    """A P-256 CA certificate; self-signed when ``issuer`` is ``None``."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = _name(cn)
    signer_key, issuer_name = (key, subject) if issuer is None else (issuer[0], issuer[1].subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_ca_key_usage(), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer_key.public_key()),
            critical=False,
        )
    )
    return key, builder.sign(signer_key, hashes.SHA256())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace existing material")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if (OUT_DIR / ROOT_FILE).exists() and not args.force:
        print(f"{OUT_DIR / ROOT_FILE} exists; use --force to replace the set", file=sys.stderr)
        return 1
    root = make_ca(ROOT_CN, 1, None)
    issuing_key, issuing_cert = make_ca(ISSUING_CN, 0, root)
    pem = serialization.Encoding.PEM
    (OUT_DIR / ROOT_FILE).write_bytes(root[1].public_bytes(pem))
    (OUT_DIR / ISSUING_FILE).write_bytes(issuing_cert.public_bytes(pem))
    (OUT_DIR / ISSUING_KEY_FILE).write_bytes(
        issuing_key.private_bytes(
            pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    print(f"wrote {ROOT_FILE}, {ISSUING_FILE}, {ISSUING_KEY_FILE}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
