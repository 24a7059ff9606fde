"""The secure session of the band management protocol, as pure state machines (docs/protocol.md §7).

No I/O and no clock of its own: randomness is injectable, certificate checks take the time to check
at. The pieces:

* §7.1 — :func:`verify_chain`: the band's certificate chain against the CA the host trusts.
* §7.2 — :class:`HostHandshake` (the host's half: HELLO out, verified session in) and
  :func:`answer_hello` (the band's half); :func:`transcript` is what the band signs.
* §7.3 — :func:`derive_keys`: ECDH P-256, then HKDF-SHA256 over both nonces and the transcript.
* §7.4, §7.5 — :class:`RecordLayer`: AES-256-GCM per direction, 64-bit sequence numbers in the
  nonce and the associated data; replays, reordering and tampering raise
  :class:`~nymi_device.errors.SecureSessionError` and the caller closes the session.
"""

from __future__ import annotations

import datetime
import enum
import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cryptography import x509
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.x509 import verification

from nymi_device.errors import SecureSessionError, StatusCode
from nymi_device.protocol.management import SUPPORTED_VERSIONS, Body, MessageError, Record
from nymi_device.protocol.management_bodies import BodyReader, Capabilities, decode_capabilities
from nymi_device.protocol.management_cbor import encode

__all__ = [
    "HANDSHAKE_LABEL",
    "KEYS_LABEL",
    "MAX_CHAIN",
    "NONCE_SIZE",
    "POINT_SIZE",
    "BandHello",
    "HostHandshake",
    "RecordLayer",
    "SessionInfo",
    "SessionKeys",
    "Side",
    "answer_hello",
    "certificate_serial",
    "derive_keys",
    "transcript",
    "verify_chain",
]

HANDSHAKE_LABEL = "nymi-band-management/1 handshake"
KEYS_LABEL = b"nymi-band-management/1 keys"
NONCE_SIZE = 32
POINT_SIZE = 65  # uncompressed SEC1 P-256 point
MAX_CHAIN = 4
MAX_VERSIONS = 16
TAG_SIZE = 16
_LAST_SEQUENCE = (1 << 64) - 1
_ECDSA = ec.ECDSA(hashes.SHA256())
_UNCOMPRESSED = serialization.PublicFormat.UncompressedPoint
_X962 = serialization.Encoding.X962

Rng = Callable[[int], bytes]


class Side(enum.Enum):
    """Which end of the session; the value is the direction byte of what this side sends."""

    HOST = 0x48  # 'H': host → band
    BAND = 0x42  # 'B': band → host


# -- §7.3 keys ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SessionKeys:
    key_hb: bytes
    key_bh: bytes
    iv_hb: bytes
    iv_bh: bytes
    session_id: bytes

    def __repr__(self) -> str:  # keys never reach a log
        return f"SessionKeys(session_id={self.session_id.hex()})"


def transcript(
    versions: Sequence[int], host_pub: bytes, host_nonce: bytes, version: int, band_pub: bytes,
    band_nonce: bytes, leaf_der: bytes, capabilities: bytes,
) -> bytes:
    """The bytes the band signs (§7.2)."""
    return encode([
        HANDSHAKE_LABEL, list(versions), host_pub, host_nonce, version, band_pub, band_nonce,
        hashlib.sha256(leaf_der).digest(), hashlib.sha256(capabilities).digest(),
    ])


def derive_keys(shared: bytes, host_nonce: bytes, band_nonce: bytes, signed: bytes) -> SessionKeys:
    """The session keys of §7.3 from the ECDH secret, both nonces and the signed transcript."""
    th = hashlib.sha256(signed).digest()
    okm = HKDF(
        algorithm=hashes.SHA256(), length=88, salt=host_nonce + band_nonce, info=KEYS_LABEL + th
    ).derive(shared)
    return SessionKeys(okm[0:32], okm[32:64], okm[64:76], okm[76:88], th[:8])


# -- §7.4, §7.5 records -------------------------------------------------------------------------


class RecordLayer:
    """Seals what one side sends and opens what it receives, for one session."""

    def __init__(self, keys: SessionKeys, side: Side, version: int) -> None:
        self.side = side
        self.version = version
        self.session_id = keys.session_id
        host = side is Side.HOST
        self._send_aead = AESGCM(keys.key_hb if host else keys.key_bh)
        self._recv_aead = AESGCM(keys.key_bh if host else keys.key_hb)
        self._send_iv = int.from_bytes(keys.iv_hb if host else keys.iv_bh, "big")
        self._recv_iv = int.from_bytes(keys.iv_bh if host else keys.iv_hb, "big")
        self._send_dir = side.value
        self._recv_dir = (Side.BAND if host else Side.HOST).value
        self.send_sequence = 0
        self.recv_sequence = 0

    def _nonce_aad(self, iv: int, direction: int, sequence: int) -> tuple[bytes, bytes]:
        nonce = (iv ^ sequence).to_bytes(12, "big")
        aad = bytes((self.version, direction)) + sequence.to_bytes(8, "big")
        return nonce, aad

    def seal(self, plaintext: bytes) -> Record:
        """The next record carrying ``plaintext`` (an encoded inner message)."""
        sequence = self.send_sequence
        if sequence >= _LAST_SEQUENCE:
            raise SecureSessionError(StatusCode.SESSION_REQUIRED, "sequence numbers exhausted")
        nonce, aad = self._nonce_aad(self._send_iv, self._send_dir, sequence)
        self.send_sequence = sequence + 1
        return Record(sequence, self._send_aead.encrypt(nonce, plaintext, aad), self.version)

    def open(self, record: Record) -> bytes:
        """The plaintext of ``record``; :class:`SecureSessionError` unless it is the next one."""
        if record.version != self.version:
            raise SecureSessionError(StatusCode.INTEGRITY_FAILURE, "record of another version")
        expected = self.recv_sequence
        if record.sequence < expected:
            raise SecureSessionError(
                StatusCode.REPLAYED, f"record {record.sequence} replayed (expected {expected})"
            )
        if record.sequence > expected:
            raise SecureSessionError(
                StatusCode.OUT_OF_ORDER, f"record {record.sequence} out of order (expected "
                f"{expected})",
            )
        if expected >= _LAST_SEQUENCE:
            raise SecureSessionError(StatusCode.SESSION_REQUIRED, "sequence numbers exhausted")
        nonce, aad = self._nonce_aad(self._recv_iv, self._recv_dir, expected)
        try:
            plaintext = self._recv_aead.decrypt(nonce, record.ciphertext, aad)
        except InvalidTag:
            raise SecureSessionError(
                StatusCode.INTEGRITY_FAILURE, f"record {expected} failed authentication"
            ) from None
        self.recv_sequence = expected + 1
        return plaintext


# -- §7.1 certificates --------------------------------------------------------------------------


def _leaf_is_end_entity(
    policy: verification.Policy, cert: x509.Certificate, ext: x509.BasicConstraints | None
) -> None:
    if ext is None or ext.ca:
        raise ValueError("the band certificate must be an end entity (CA=false)")


def _leaf_signs(
    policy: verification.Policy, cert: x509.Certificate, ext: x509.KeyUsage | None
) -> None:
    if ext is None or not ext.digital_signature:
        raise ValueError("the band certificate must allow digitalSignature")


def verify_chain(
    chain: Sequence[bytes], trusted_ca: x509.Certificate, at: datetime.datetime | None = None
) -> x509.Certificate:
    """The leaf of ``chain`` (DER, leaf first) once it verifies to ``trusted_ca`` (§7.1)."""
    try:
        certs = [x509.load_der_x509_certificate(der) for der in chain]
    except ValueError as exc:
        raise SecureSessionError(
            StatusCode.UNTRUSTED_BAND, f"unreadable certificate: {exc}"
        ) from None
    if not 1 <= len(certs) <= MAX_CHAIN:
        raise SecureSessionError(
            StatusCode.UNTRUSTED_BAND, f"a chain has 1..{MAX_CHAIN} certificates"
        )
    leaf_policy = (
        verification.ExtensionPolicy.permit_all()
        .require_present(x509.BasicConstraints, verification.Criticality.CRITICAL,
                         _leaf_is_end_entity)
        .require_present(x509.KeyUsage, verification.Criticality.CRITICAL, _leaf_signs)
    )
    builder = (
        verification.PolicyBuilder()
        .store(verification.Store([trusted_ca]))
        .max_chain_depth(MAX_CHAIN)
        .extension_policies(
            ca_policy=verification.ExtensionPolicy.webpki_defaults_ca(), ee_policy=leaf_policy
        )
    )
    if at is not None:
        builder = builder.time(at)
    try:
        builder.build_client_verifier().verify(certs[0], certs[1:])
    except verification.VerificationError as exc:
        raise SecureSessionError(
            StatusCode.UNTRUSTED_BAND, f"the band's certificate is not from a trusted CA: {exc}"
        ) from None
    key = certs[0].public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise SecureSessionError(StatusCode.UNTRUSTED_BAND, "the band's identity key is not P-256")
    return certs[0]


def certificate_serial(cert: x509.Certificate) -> str:
    """The band serial a band identity certificate names (subject serialNumber, else CN)."""
    for oid in (x509.NameOID.SERIAL_NUMBER, x509.NameOID.COMMON_NAME):
        attrs = cert.subject.get_attributes_for_oid(oid)
        if attrs:
            return str(attrs[0].value)
    return ""


# -- §7.2 handshake -----------------------------------------------------------------------------


def _load_point(data: bytes, status: StatusCode) -> ec.EllipticCurvePublicKey:
    if len(data) != POINT_SIZE or data[0] != 0x04:
        raise SecureSessionError(status, "an ephemeral key is a 65-byte uncompressed P-256 point")
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), data)
    except ValueError:
        raise SecureSessionError(status, "the ephemeral key is not a point on P-256") from None


@dataclass(frozen=True)
class SessionInfo:
    """What the host knows about an established session (no keys)."""

    serial: str
    version: int
    session_id: str
    capabilities: Capabilities
    certificate: x509.Certificate


@dataclass(frozen=True)
class BandHello:
    """The band's answer to a HELLO: the response body and the session it opens."""

    body: Body
    keys: SessionKeys
    version: int


def answer_hello(
    body: Body,
    identity_key: ec.EllipticCurvePrivateKey,
    chain: Sequence[bytes],
    capabilities: bytes,
    versions: Sequence[int] = SUPPORTED_VERSIONS,
    rng: Rng = os.urandom,
) -> BandHello:
    """The band's half of §7.2; :class:`SecureSessionError` (``HANDSHAKE_FAILED`` or
    ``UNSUPPORTED_VERSION``) for a HELLO it cannot answer."""
    reader = BodyReader(body, StatusCode.HANDSHAKE_FAILED, "HELLO")
    try:
        offered = reader.array(1, MAX_VERSIONS)
        host_pub = reader.raw_bytes(2, POINT_SIZE)
        host_nonce = reader.raw_bytes(3, NONCE_SIZE)
    except MessageError as exc:
        raise SecureSessionError(exc.status, exc.detail) from None
    if not offered or not all(isinstance(v, int) and not isinstance(v, bool) for v in offered):
        raise SecureSessionError(StatusCode.HANDSHAKE_FAILED, "HELLO: key 1 lists versions")
    common = [v for v in versions if v in offered]
    if not common:
        raise SecureSessionError(StatusCode.UNSUPPORTED_VERSION, "no common protocol version")
    version = max(common)
    host_key = _load_point(host_pub, StatusCode.HANDSHAKE_FAILED)
    ephemeral = ec.generate_private_key(ec.SECP256R1())
    band_pub = ephemeral.public_key().public_bytes(_X962, _UNCOMPRESSED)
    band_nonce = rng(NONCE_SIZE)
    signed = transcript(
        [int(v) for v in offered if isinstance(v, int)], host_pub, host_nonce, version, band_pub,
        band_nonce, chain[0], capabilities,
    )
    shared = ephemeral.exchange(ec.ECDH(), host_key)
    answer: Body = {
        1: version, 2: band_pub, 3: band_nonce, 4: list(chain), 5: capabilities,
        6: identity_key.sign(signed, _ECDSA),
    }
    return BandHello(answer, derive_keys(shared, host_nonce, band_nonce, signed), version)


class HostHandshake:
    """The host's half of §7.2: :meth:`hello_body` out, :meth:`finish` with the band's answer."""

    def __init__(
        self,
        trusted_ca: x509.Certificate,
        versions: Sequence[int] = SUPPORTED_VERSIONS,
        rng: Rng = os.urandom,
    ) -> None:
        if not versions or len(versions) > MAX_VERSIONS:
            raise ValueError(f"offer 1..{MAX_VERSIONS} versions")
        self.trusted_ca = trusted_ca
        self.versions = [int(v) for v in versions]
        self._ephemeral = ec.generate_private_key(ec.SECP256R1())
        self._pub = self._ephemeral.public_key().public_bytes(_X962, _UNCOMPRESSED)
        self._nonce = rng(NONCE_SIZE)

    def hello_body(self) -> Body:
        return {1: list(self.versions), 2: self._pub, 3: self._nonce}

    def finish(
        self, body: Body, at: datetime.datetime | None = None
    ) -> tuple[SessionInfo, SessionKeys]:
        """Verify the band's answer; the session, or :class:`SecureSessionError`."""
        reader = BodyReader(body, StatusCode.HANDSHAKE_FAILED, "HELLO response")
        try:
            version = reader.uint(1, 0xFF)
            band_pub = reader.raw_bytes(2, POINT_SIZE)
            band_nonce = reader.raw_bytes(3, NONCE_SIZE)
            chain = reader.array(4, MAX_CHAIN)
            caps_bytes = reader.raw_bytes(5)
            signature = reader.raw_bytes(6)
            capabilities = decode_capabilities(caps_bytes, StatusCode.HANDSHAKE_FAILED)
        except MessageError as exc:
            raise SecureSessionError(exc.status, exc.detail) from None
        if version not in self.versions:
            raise SecureSessionError(StatusCode.HANDSHAKE_FAILED, f"version {version} not offered")
        if not chain or not all(isinstance(c, bytes) for c in chain):
            raise SecureSessionError(StatusCode.UNTRUSTED_BAND, "no certificate chain")
        ders = [c for c in chain if isinstance(c, bytes)]
        leaf = verify_chain(ders, self.trusted_ca, at)
        band_key = _load_point(band_pub, StatusCode.HANDSHAKE_FAILED)
        signed = transcript(self.versions, self._pub, self._nonce, version, band_pub, band_nonce,
                            ders[0], caps_bytes)
        leaf_key = leaf.public_key()
        assert isinstance(leaf_key, ec.EllipticCurvePublicKey)  # verify_chain checked it
        try:
            leaf_key.verify(signature, signed, _ECDSA)
        except InvalidSignature:
            raise SecureSessionError(
                StatusCode.HANDSHAKE_FAILED, "the band's handshake signature does not verify"
            ) from None
        keys = derive_keys(self._ephemeral.exchange(ec.ECDH(), band_key), self._nonce, band_nonce,
                           signed)
        info = SessionInfo(certificate_serial(leaf), version, keys.session_id.hex(), capabilities,
                           leaf)
        return info, keys
