#!/usr/bin/env python3
"""Make the SIMULATED attestation authority and one batch attestation key per band model.

Run once; the output under ``firmware_fixtures/attestation/`` is committed and read by the
simulated bands (it is never regenerated at test time). Every fixture with a ``[ctap]`` table is
grouped by AAGUID (one AAGUID = one authenticator model = one attestation batch) and gets:

* ``<model>-batch-key.pem``   the batch private key (PKCS#8, P-256), used only inside the
  simulated band, never returned by any band API;
* ``<model>-batch-cert.pem``  its certificate, with the FIDO attestation certificate fields
  (WebAuthn §8.2.1 packed attestation certificate requirements): subject C, O,
  OU="Authenticator Attestation", CN; basicConstraints CA=false; the non-critical
  id-fido-gen-ce-aaguid extension (1.3.6.1.4.1.45724.1.1.4) holding the model's AAGUID.

Both batches chain to ``simulation-root-ca.pem``, a root named as a simulation authority. The
root's private key is not written anywhere: it signs the batches during this run and is then
discarded, so nothing can be issued under it later. Running again with ``--force`` replaces the
whole set (root included).

Usage: ``.venv/bin/python scripts/make_simulation_ca.py [--force]``
"""

from __future__ import annotations

import argparse
import datetime
import re
import sys
import uuid
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from simulator.fixtures import all_fixtures  # noqa: E402

OUT_DIR = ROOT / "firmware_fixtures" / "attestation"
ROOT_FILE = "simulation-root-ca.pem"
ORGANIZATION = "nymi-band-stack SIMULATION"
COUNTRY = "CA"
ROOT_CN = "nymi-band-stack SIMULATED Root CA - not a real authority"
OID_FIDO_AAGUID = x509.ObjectIdentifier("1.3.6.1.4.1.45724.1.1.4")
NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9.]+", "-", text.lower()).strip("-")


def _name(cn: str, ou: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.COUNTRY_NAME, COUNTRY),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, ORGANIZATION),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def make_root() -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = _name(ROOT_CN, "SIMULATED - not a real authority")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_batch(
    root_key: ec.EllipticCurvePrivateKey,
    root_cert: x509.Certificate,
    model_name: str,
    aaguid: uuid.UUID,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(
            _name(f"{model_name} SIMULATED Batch Attestation", "Authenticator Attestation")
        )
        .issuer_name(root_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(NOT_BEFORE)
        .not_valid_after(NOT_AFTER)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=False,
                crl_sign=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        # extnValue is the DER OCTET STRING of the 16 AAGUID bytes.
        .add_extension(
            x509.UnrecognizedExtension(OID_FIDO_AAGUID, b"\x04\x10" + aaguid.bytes),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(root_key.public_key()),
            critical=False,
        )
        .sign(root_key, hashes.SHA256())
    )
    return key, cert


def _pem_cert(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def models() -> dict[str, tuple[str, uuid.UUID]]:
    """AAGUID -> (model name, AAGUID) over every fixture that has a [ctap] table."""
    found: dict[str, tuple[str, uuid.UUID]] = {}
    for fixture in all_fixtures():
        if fixture.ctap is None:
            continue
        found.setdefault(
            fixture.ctap.aaguid, (fixture.identity.model_name, uuid.UUID(fixture.ctap.aaguid))
        )
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--force", action="store_true", help="replace existing material")
    args = parser.parse_args(argv)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    if (OUT_DIR / ROOT_FILE).exists() and not args.force:
        print(
            f"{OUT_DIR / ROOT_FILE} exists; use --force to replace the whole set", file=sys.stderr
        )
        return 1
    root_key, root_cert = make_root()
    (OUT_DIR / ROOT_FILE).write_bytes(_pem_cert(root_cert))
    print(f"wrote {ROOT_FILE}")
    for model_name, aaguid in models().values():
        slug = _slug(model_name)
        key, cert = make_batch(root_key, root_cert, model_name, aaguid)
        (OUT_DIR / f"{slug}-batch-key.pem").write_bytes(_pem_key(key))
        (OUT_DIR / f"{slug}-batch-cert.pem").write_bytes(_pem_cert(cert))
        print(f"wrote {slug}-batch-key.pem, {slug}-batch-cert.pem (AAGUID {aaguid})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
