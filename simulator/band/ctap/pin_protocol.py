"""PIN/UV auth protocols one and two, authenticator side (CTAP 2.1 §6.5.6 and §6.5.7).

Each protocol owns a P-256 key-agreement key pair (``initialize``/``regenerate``), derives the
shared secret from the platform's key (``decapsulate``), and provides ``encrypt``, ``decrypt`` and
``verify``. Protocol 1: SHA-256(Z) as the secret, AES-256-CBC with a zero IV, HMAC-SHA-256
truncated to 16 bytes. Protocol 2: HKDF-SHA-256 into an HMAC key and an AES key, AES-256-CBC with
a random IV prepended, full 32-byte HMAC-SHA-256.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Mapping
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .constants import CoseAlg
from .errors import ERR, CtapError

_ZERO_IV = b"\x00" * 16


def _aes_cbc(key: bytes, iv: bytes, data: bytes, *, encrypt: bool) -> bytes:
    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    ctx = cipher.encryptor() if encrypt else cipher.decryptor()
    return ctx.update(data) + ctx.finalize()


class PinUvAuthProtocol:
    """PIN/UV auth protocol 1 (CTAP 2.1 §6.5.6)."""

    VERSION = 1
    #: Length of pinUvAuthParam values this protocol produces.
    PARAM_LENGTH = 16

    def __init__(self, rng: Callable[[int], bytes]) -> None:
        self._rng = rng
        self._key: ec.EllipticCurvePrivateKey | None = None

    # -- key agreement --------------------------------------------------------------------

    def regenerate(self) -> None:
        """Forget the key-agreement key; a new one is made on next use (§6.5.6 regenerate)."""
        self._key = None

    def _agreement_key(self) -> ec.EllipticCurvePrivateKey:
        if self._key is None:
            self._key = ec.generate_private_key(ec.SECP256R1())
        return self._key

    def get_public_key(self) -> dict[int, Any]:
        """The key-agreement public key as a COSE_Key (alg -25, §6.5.6 getPublicKey)."""
        point = (
            self._agreement_key()
            .public_key()
            .public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        )
        return {1: 2, 3: int(CoseAlg.ECDH_ES_HKDF_256), -1: 1, -2: point[1:33], -3: point[33:]}

    def decapsulate(self, peer: Any) -> bytes:
        """Shared secret from the platform's key-agreement key; bad keys are INVALID_PARAMETER."""
        if not isinstance(peer, Mapping):
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        x, y = peer.get(-2), peer.get(-3)
        if peer.get(1) != 2 or peer.get(-1) != 1 or type(x) is not bytes or type(y) is not bytes:
            raise CtapError(ERR.INVALID_PARAMETER)
        if len(x) != 32 or len(y) != 32:
            raise CtapError(ERR.INVALID_PARAMETER)
        try:
            public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
            z = self._agreement_key().exchange(ec.ECDH(), public)
        except ValueError:
            raise CtapError(ERR.INVALID_PARAMETER) from None
        return self.kdf(z)

    def kdf(self, z: bytes) -> bytes:
        return hashlib.sha256(z).digest()

    # -- symmetric operations ------------------------------------------------------------

    def encrypt(self, key: bytes, plaintext: bytes) -> bytes:
        return _aes_cbc(key, _ZERO_IV, plaintext, encrypt=True)

    def decrypt(self, key: bytes, ciphertext: bytes) -> bytes | None:
        """Plaintext, or None when the ciphertext is not a whole number of blocks."""
        if not ciphertext or len(ciphertext) % 16:
            return None
        return _aes_cbc(key, _ZERO_IV, ciphertext, encrypt=False)

    def authenticate(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key, message, hashlib.sha256).digest()[:16]

    def verify(self, key: bytes, message: bytes, signature: bytes) -> bool:
        """``verify`` of §6.5.6: constant-time comparison of the MAC."""
        if len(signature) != self.PARAM_LENGTH:
            return False
        return hmac.compare_digest(self.authenticate(key, message), signature)


class PinUvAuthProtocolTwo(PinUvAuthProtocol):
    """PIN/UV auth protocol 2 (CTAP 2.1 §6.5.7)."""

    VERSION = 2
    PARAM_LENGTH = 32
    _SALT = b"\x00" * 32

    def kdf(self, z: bytes) -> bytes:
        def hkdf(info: bytes) -> bytes:
            return HKDF(algorithm=hashes.SHA256(), length=32, salt=self._SALT, info=info).derive(z)

        return hkdf(b"CTAP2 HMAC key") + hkdf(b"CTAP2 AES key")

    def encrypt(self, key: bytes, plaintext: bytes) -> bytes:
        iv = self._rng(16)
        return iv + _aes_cbc(key[32:], iv, plaintext, encrypt=True)

    def decrypt(self, key: bytes, ciphertext: bytes) -> bytes | None:
        if len(ciphertext) < 32 or len(ciphertext) % 16:
            return None
        return _aes_cbc(key[32:], ciphertext[:16], ciphertext[16:], encrypt=False)

    def authenticate(self, key: bytes, message: bytes) -> bytes:
        return hmac.new(key[:32], message, hashlib.sha256).digest()


def make_protocols(
    versions: tuple[int, ...], rng: Callable[[int], bytes]
) -> dict[int, PinUvAuthProtocol]:
    """The protocols a fixture lists, by version number."""
    known: dict[int, type[PinUvAuthProtocol]] = {1: PinUvAuthProtocol, 2: PinUvAuthProtocolTwo}
    return {v: known[v](rng) for v in versions if v in known}
