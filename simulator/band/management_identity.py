"""A band's management identity: its key on flash, its certificate from the band identity CA.

docs/protocol.md §7.1. Each band holds an ECDSA P-256 identity key, created when the band is
provisioned and stored under ``device/management/`` in its
:class:`~simulator.band.storage.FlashStorage` (wrapped by the device key, so Delete User Data
keeps it: it identifies the band, not the wearer). Its X.509 certificate (subject CN and
serialNumber = the serial, CA=false, keyUsage digitalSignature) is issued by the SIMULATED band
identity issuing CA in ``firmware_fixtures/attestation/`` (``scripts/make_band_identity_ca.py``).
That authority is a simulation authority: trust its root only in tests and simulations.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from nymi_device.errors import FixtureError, StorageError
from nymi_device.protocol.management_cbor import CborError, decode, encode
from simulator.band.storage import FlashStorage
from simulator.fixtures import fixture_dir

__all__ = [
    "IDENTITY_CHAIN_RECORD",
    "IDENTITY_KEY_RECORD",
    "IdentityIssuer",
    "ManagementIdentity",
    "load_management_identity",
    "provision_management_identity",
    "simulation_root",
]

IDENTITY_KEY_RECORD = "device/management/identity-key"
IDENTITY_CHAIN_RECORD = "device/management/identity-chain"
ROOT_CERT_FILE = "attestation/band-identity-root-ca.pem"
ISSUING_CERT_FILE = "attestation/band-identity-issuing-ca.pem"
ISSUING_KEY_FILE = "attestation/band-identity-issuing-ca-key.pem"
_NOT_BEFORE = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
_NOT_AFTER = datetime.datetime(2049, 12, 31, 23, 59, 59, tzinfo=datetime.UTC)
_DER = serialization.Encoding.DER


@dataclass(frozen=True)
class ManagementIdentity:
    """The identity key and its chain (leaf first, root not included)."""

    key: ec.EllipticCurvePrivateKey
    chain: tuple[x509.Certificate, ...]

    def __repr__(self) -> str:  # the key never reaches a log
        return f"ManagementIdentity(subject={self.chain[0].subject.rfc4514_string()!r})"


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise FixtureError(f"{path}: cannot read band identity CA material: {exc}") from None


@cache
def _load_issuer(directory: Path) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    cert = x509.load_pem_x509_certificate(_read(directory / ISSUING_CERT_FILE))
    key = serialization.load_pem_private_key(_read(directory / ISSUING_KEY_FILE), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise FixtureError(f"{directory / ISSUING_KEY_FILE}: not an EC private key")
    return key, cert


def simulation_root(directory: Path | None = None) -> x509.Certificate:
    """The SIMULATED band identity root a host trusts in tests and simulations."""
    path = (directory or fixture_dir()) / ROOT_CERT_FILE
    return x509.load_pem_x509_certificate(_read(path))


class IdentityIssuer:
    """Issues band identity certificates with a CA key (the simulation authority by default)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey, certificate: x509.Certificate) -> None:
        self.key = key
        self.certificate = certificate

    @classmethod
    def simulation(cls, directory: Path | None = None) -> IdentityIssuer:
        """The SIMULATED issuing CA from the fixture material."""
        key, cert = _load_issuer((directory or fixture_dir()).resolve())
        return cls(key, cert)

    def issue(self, serial: str, public_key: ec.EllipticCurvePublicKey) -> x509.Certificate:
        """The identity certificate of band ``serial`` for ``public_key`` (§7.1)."""
        subject = x509.Name([
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "nymi-band-stack SIMULATION"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, "Band Management Identity"),
            x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
            x509.NameAttribute(NameOID.COMMON_NAME, serial),
        ])
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.certificate.subject)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(_NOT_BEFORE)
            .not_valid_after(_NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=True, content_commitment=False, key_encipherment=False,
                    data_encipherment=False, key_agreement=False, key_cert_sign=False,
                    crl_sign=False, encipher_only=False, decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()),
                critical=False,
            )
            .sign(self.key, hashes.SHA256())
        )


def load_management_identity(storage: FlashStorage) -> ManagementIdentity | None:
    """The identity stored on the band's flash, or ``None`` before provisioning."""
    raw_key, raw_chain = storage.get(IDENTITY_KEY_RECORD), storage.get(IDENTITY_CHAIN_RECORD)
    if raw_key is None or raw_chain is None:
        return None
    try:
        key = serialization.load_der_private_key(raw_key, password=None)
        ders = decode(raw_chain)
        if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(ders, list):
            raise ValueError("unexpected record contents")
        chain = tuple(x509.load_der_x509_certificate(bytes(d)) for d in ders
                      if isinstance(d, bytes))
    except (ValueError, CborError) as exc:
        raise StorageError(f"the band's management identity is corrupt: {exc}") from None
    if not chain:
        raise StorageError("the band's management identity has no certificate")
    return ManagementIdentity(key, chain)


def provision_management_identity(
    storage: FlashStorage, serial: str, issuer: IdentityIssuer | None = None
) -> ManagementIdentity:
    """The band's identity: the stored one, or a new key and certificate, stored atomically."""
    existing = load_management_identity(storage)
    if existing is not None:
        return existing
    issuer = issuer or IdentityIssuer.simulation()
    key = ec.generate_private_key(ec.SECP256R1())
    chain = (issuer.issue(serial, key.public_key()), issuer.certificate)
    raw_key = key.private_bytes(
        _DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    with storage.transaction() as txn:
        txn.put(IDENTITY_KEY_RECORD, raw_key)
        txn.put(IDENTITY_CHAIN_RECORD, encode([c.public_bytes(_DER) for c in chain]))
    return ManagementIdentity(key, chain)
