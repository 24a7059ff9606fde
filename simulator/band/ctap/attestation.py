"""Packed basic attestation with the fixture's batch key (CTAP 2.1 §6.1.2 step 19, WebAuthn §8.2).

The batch key is loaded from the fixture's attestation material (``[ctap].attestation_key``) and
kept inside :class:`Attestation`; nothing returns it. A fixture without material gets packed
*self* attestation, signed with the new credential's own key.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nymi_device.errors import FixtureError
from simulator.fixtures import FIXTURE_DIR
from simulator.fixtures_ctap import CtapSpec

from . import codec
from .constants import CoseAlg

_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


@cache
def _load_key(path: Path) -> ec.EllipticCurvePrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as exc:
        raise FixtureError(f"{path.name}: cannot load attestation key: {exc}") from None
    if not isinstance(key, ec.EllipticCurvePrivateKey) or key.curve.name != "secp256r1":
        raise FixtureError(f"{path.name}: attestation key must be EC P-256")
    return key


@cache
def _load_cert_der(path: Path) -> bytes:
    try:
        cert = x509.load_pem_x509_certificate(path.read_bytes())
    except (OSError, ValueError) as exc:
        raise FixtureError(f"{path.name}: cannot load certificate: {exc}") from None
    return cert.public_bytes(serialization.Encoding.DER)


class Attestation:
    """The model's attestation: batch key and certificate, or none (self attestation)."""

    def __init__(self, spec: CtapSpec, directory: Path = FIXTURE_DIR) -> None:
        self._key: ec.EllipticCurvePrivateKey | None = None
        self._x5c: list[bytes] = []
        self.root_der: bytes | None = None
        if spec.attestation_key and spec.attestation_certificate:
            self._key = _load_key((directory / spec.attestation_key).resolve())
            self._x5c = [_load_cert_der((directory / spec.attestation_certificate).resolve())]
        if spec.attestation_root:
            self.root_der = _load_cert_der((directory / spec.attestation_root).resolve())
        # The constant tail of a basic packed attStmt: "x5c": [batch certificate].
        cert = self._x5c[0] if self._x5c else b""
        self._x5c_tail = b"\x63x5c\x81" + codec.bstr_header(len(cert)) + cert

    @property
    def certificate_der(self) -> bytes | None:
        """The batch certificate (DER), as carried in x5c and in U2F registrations."""
        return self._x5c[0] if self._x5c else None

    @property
    def basic(self) -> bool:
        return self._key is not None

    def sign(self, data: bytes) -> bytes:
        """ECDSA P-256/SHA-256 signature with the batch key (DER encoded)."""
        if self._key is None:
            raise RuntimeError("no batch attestation key")
        return self._key.sign(data, _ECDSA_SHA256)

    def packed_basic_cbor(self, signed: bytes) -> bytes:
        """The encoded basic attStmt ``{"alg": -7, "sig": sig, "x5c": [cert]}`` (canonical)."""
        sig = self.sign(signed)
        return b"\xa3\x63alg\x26\x63sig" + codec.bstr_header(len(sig)) + sig + self._x5c_tail

    def packed_statement(
        self, signed: bytes, self_sign: tuple[CoseAlg, bytes] | None = None
    ) -> dict[str, Any]:
        """attStmt of the packed format over ``authData || clientDataHash``.

        ``self_sign`` is the credential's (algorithm, signature) used when there is no batch key.
        """
        if self._key is not None:
            return {"alg": int(CoseAlg.ES256), "sig": self.sign(signed), "x5c": list(self._x5c)}
        if self_sign is None:
            raise RuntimeError("self attestation needs the credential signature")
        alg, sig = self_sign
        return {"alg": int(alg), "sig": sig}
