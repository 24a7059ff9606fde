"""Credentials on the band's flash: wrapped credential IDs, discoverable records, sign counters.

Every credential ID, discoverable or not, wraps the credential's private key (CTAP 2.1 §6.1.2
step 16; WebAuthn §4 "credential ID", the encrypted-source form)::

    credentialId = 0x01 || nonce(12) || AES-256-GCM(wrapKey, nonce, alg || flags || privateKey,
                                                    aad = rpIdHash)

``wrapKey`` lives under ``user/ctap/secret``, so Delete User Data (a crypto-erase of ``user/``)
makes every credential ID ever issued undecryptable: assertions with them then find nothing
(``CTAP2_ERR_NO_CREDENTIALS``). A discoverable credential additionally has a record under
``user/ctap/rk/`` holding its RP and user entities (§6.1.2 step 17); deleting the record (credMgmt)
retires the ID as well.

Sign counters are per credential and strictly monotonic (WebAuthn §6.1.1). To keep assertions fast
the store persists a *reserved ceiling* ``counter_reserve`` ahead of the last value handed out and
writes again only when the ceiling is reached; after a restart counting resumes above the
persisted ceiling, so no value is ever repeated.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from simulator.band.storage import FlashStorage

from . import codec
from .constants import (
    KEY_COUNTER_PREFIX,
    KEY_RESIDENT_PREFIX,
    KEY_SECRET,
    CoseAlg,
    CredProtect,
)
from .errors import ERR, CtapError

_VERSION = 0x01
_NONCE = 12
_ALG_CODES: dict[CoseAlg, int] = {CoseAlg.ES256: 0, CoseAlg.EDDSA: 1}
_CODE_ALGS = {code: alg for alg, code in _ALG_CODES.items()}
_FLAG_DISCOVERABLE = 0x04
_FLAG_PROTECT_MASK = 0x03
_PLAIN_LEN = 2 + 32
#: Length of every credential ID this authenticator issues.
CREDENTIAL_ID_LENGTH = 1 + _NONCE + _PLAIN_LEN + 16
_CACHE_LIMIT = 1024
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())
_COUNTER = struct.Struct(">Q")
_P256 = ec.SECP256R1()


def _cose_es256(x: bytes, y: bytes) -> bytes:
    # {1: 2 (EC2), 3: -7 (ES256), -1: 1 (P-256), -2: x, -3: y}, CTAP2 canonical order.
    return b"\xa5\x01\x02\x03\x26\x20\x01\x21\x58\x20" + x + b"\x22\x58\x20" + y


def _cose_eddsa(x: bytes) -> bytes:
    # {1: 1 (OKP), 3: -8 (EdDSA), -1: 6 (Ed25519), -2: x}
    return b"\xa4\x01\x01\x03\x27\x20\x06\x21\x58\x20" + x


def _descriptor(cred_id: bytes) -> bytes:
    # {"id": credentialId, "type": "public-key"}, CTAP2 canonical order ("id" sorts first).
    return b"\xa2\x62id" + codec.bstr_header(len(cred_id)) + cred_id + b"\x64type\x6apublic-key"


# RFC 5915 ECPrivateKey DER of a P-256 key: fixed layout, private scalar at [7:39] and the
# uncompressed public point at [56:121]; one export gives both.
_EC_DER_HEAD = bytes.fromhex("30770201010420")
_EC_DER_MIDDLE = bytes.fromhex("a00a06082a8648ce3d030107a144034200")


def _p256_private_and_point(key: ec.EllipticCurvePrivateKey) -> tuple[bytes, bytes]:
    der = key.private_bytes(
        serialization.Encoding.DER,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    if len(der) == 121 and der[:7] == _EC_DER_HEAD and der[39:56] == _EC_DER_MIDDLE:
        return der[7:39], der[56:]
    point = key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return key.private_numbers().private_value.to_bytes(32, "big"), point


@dataclass(frozen=True)
class ResidentRecord:
    """What a discoverable credential stores besides its key (CTAP 2.1 §6.1.2 step 17)."""

    cred_id: bytes
    rp: dict[str, Any]
    user: dict[str, Any]
    seq: int
    cred_blob: bytes | None = None
    large_blob_key: bytes | None = None

    @property
    def rp_id(self) -> str:
        value: str = self.rp["id"]
        return value

    @property
    def rp_id_hash(self) -> bytes:
        return hashlib.sha256(self.rp_id.encode()).digest()

    @property
    def user_id(self) -> bytes:
        value: bytes = self.user["id"]
        return value

    def encode(self) -> bytes:
        body: dict[str, Any] = {
            "id": self.cred_id,
            "rp": self.rp,
            "user": self.user,
            "seq": self.seq,
        }
        if self.cred_blob is not None:
            body["blob"] = self.cred_blob
        if self.large_blob_key is not None:
            body["lbk"] = self.large_blob_key
        return codec.encode(body)

    @classmethod
    def decode(cls, data: bytes) -> ResidentRecord:
        body = codec.decode_item(data)
        return cls(
            cred_id=body["id"],
            rp=body["rp"],
            user=body["user"],
            seq=body["seq"],
            cred_blob=body.get("blob"),
            large_blob_key=body.get("lbk"),
        )


class Credential:
    """A credential with its private key loaded (cached per credential ID)."""

    __slots__ = (
        "_private",
        "alg",
        "ceiling",
        "cose_key",
        "counter_value",
        "cred_id",
        "cred_protect",
        "descriptor_cbor",
        "digest",
        "discoverable",
        "ecdsa_sign",
        "key",
        "record",
        "rp_id_hash",
        "sign",
    )

    def __init__(
        self,
        cred_id: bytes,
        rp_id_hash: bytes,
        alg: CoseAlg,
        private: bytes,
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey,
        cred_protect: CredProtect,
        discoverable: bool,
        point: bytes | None = None,
    ) -> None:
        self.cred_id = cred_id
        self.rp_id_hash = rp_id_hash
        self.alg = alg
        self._private = private
        self.key = key
        self.cred_protect = cred_protect
        self.discoverable = discoverable
        self.digest = hashlib.sha256(cred_id).digest()[:16].hex()
        self.record: ResidentRecord | None = None
        self.counter_value: int | None = None
        self.ceiling = 0
        #: The encoded credential descriptor, reused by every assertion.
        self.descriptor_cbor = _descriptor(cred_id)
        if isinstance(key, ec.EllipticCurvePrivateKey):
            if point is None:
                point = key.public_key().public_bytes(
                    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
                )
            self.cose_key = _cose_es256(point[1:33], point[33:])
            ecdsa_key = key
            #: ``key.sign`` itself, called with the ECDSA-SHA256 algorithm by the hot path.
            self.ecdsa_sign: Callable[[bytes, ec.EllipticCurveSignatureAlgorithm], bytes] | None
            self.ecdsa_sign = key.sign

            def sign_es256(data: bytes) -> bytes:
                return ecdsa_key.sign(data, _ECDSA_SHA256)

            self.sign: Callable[[bytes], bytes] = sign_es256
        else:
            raw = key.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw
            )
            self.cose_key = _cose_eddsa(raw)
            self.ecdsa_sign = None
            self.sign = key.sign

    @property
    def public_point(self) -> bytes:
        """Uncompressed P-256 point (U2F registration, CTAP1 §4.3)."""
        return b"\x04" + self.cose_key[10:42] + self.cose_key[45:77]


class CredentialStore:
    """Credential IDs, discoverable records and counters on one band's flash."""

    def __init__(
        self,
        storage: FlashStorage,
        rng: Callable[[int], bytes],
        *,
        counter_reserve: int,
        slots: int,
    ) -> None:
        self._storage = storage
        self._rng = rng
        self._reserve = counter_reserve
        self.slots = slots
        #: Loaded credentials by credential ID (read directly by the getAssertion hot path).
        self.cache: dict[bytes, Credential] = {}
        self._wrap: AESGCM | None = None
        self._cr_key: bytes | None = None
        self._resident: dict[str, ResidentRecord] | None = None

    # -- caches ------------------------------------------------------------------------------

    def invalidate(self) -> None:
        """Forget every cached key, record and counter (after Delete User Data or Reset)."""
        self.cache.clear()
        self._wrap = None
        self._cr_key = None
        self._resident = None

    def _secret(self) -> tuple[AESGCM, bytes] | None:
        if self._wrap is None:
            raw = self._storage.get(KEY_SECRET)
            if raw is None or len(raw) != 64:
                return None
            self._wrap, self._cr_key = AESGCM(raw[:32]), raw[32:]
        assert self._cr_key is not None
        return self._wrap, self._cr_key

    def _secret_for_write(self, puts: dict[str, bytes]) -> AESGCM:
        secret = self._secret()
        if secret is not None:
            return secret[0]
        raw = self._rng(64)
        puts[KEY_SECRET] = raw
        return AESGCM(raw[:32])

    def _residents(self) -> dict[str, ResidentRecord]:
        if self._resident is None:
            records: dict[str, ResidentRecord] = {}
            for name in self._storage.keys(KEY_RESIDENT_PREFIX):
                raw = self._storage.get(name)
                if raw is None:
                    continue
                try:
                    records[name[len(KEY_RESIDENT_PREFIX) :]] = ResidentRecord.decode(raw)
                except (CtapError, KeyError, TypeError):
                    continue  # an unreadable record is treated as absent
            self._resident = records
        return self._resident

    # -- creation -----------------------------------------------------------------------------

    def generate(
        self,
        rp_id_hash: bytes,
        alg: CoseAlg,
        cred_protect: CredProtect,
        discoverable: bool,
        puts: dict[str, bytes],
    ) -> Credential:
        """A new key pair and its wrapped ID (§6.1.2 step 16); ``puts`` collects storage writes."""
        wrap = self._secret_for_write(puts)
        point: bytes | None = None
        if alg == CoseAlg.ES256:
            ec_key = ec.generate_private_key(_P256)
            private, point = _p256_private_and_point(ec_key)
            key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey = ec_key
        else:
            ed_key = ed25519.Ed25519PrivateKey.generate()
            private = ed_key.private_bytes(
                serialization.Encoding.Raw,
                serialization.PrivateFormat.Raw,
                serialization.NoEncryption(),
            )
            key = ed_key
        flags = int(cred_protect) & _FLAG_PROTECT_MASK
        if discoverable:
            flags |= _FLAG_DISCOVERABLE
        nonce = self._rng(_NONCE)
        plain = bytes((_ALG_CODES[alg], flags)) + private
        cred_id = bytes((_VERSION,)) + nonce + wrap.encrypt(nonce, plain, rp_id_hash)
        return Credential(cred_id, rp_id_hash, alg, private, key, cred_protect, discoverable, point)

    def commit_new(
        self,
        credential: Credential,
        puts: dict[str, bytes],
        *,
        rp: dict[str, Any] | None = None,
        user: dict[str, Any] | None = None,
        cred_blob: bytes | None = None,
        large_blob_key: bytes | None = None,
    ) -> None:
        """Store a new credential: its record if discoverable (§6.1.2 step 17), in one commit.

        A discoverable credential replaces one for the same RP and user ID; when none is replaced
        and every slot is taken, ``CTAP2_ERR_KEY_STORE_FULL``.
        """
        deletes: list[str] = []
        residents = self._residents()
        if credential.discoverable:
            assert rp is not None and user is not None
            replaced = [
                digest
                for digest, rec in residents.items()
                if rec.rp_id_hash == credential.rp_id_hash and rec.user_id == user["id"]
            ]
            if not replaced and len(residents) >= self.slots:
                raise CtapError(ERR.KEY_STORE_FULL)
            seq = max((rec.seq for rec in residents.values()), default=0) + 1
            record = ResidentRecord(credential.cred_id, rp, user, seq, cred_blob, large_blob_key)
            for digest in replaced:
                deletes += [KEY_RESIDENT_PREFIX + digest, KEY_COUNTER_PREFIX + digest]
            puts[KEY_RESIDENT_PREFIX + credential.digest] = record.encode()
            credential.record = record
        with self._storage.transaction() as txn:
            for name in deletes:
                txn.delete(name)
            for name, value in puts.items():
                txn.put(name, value)
        if credential.discoverable:
            for name in deletes:
                if name.startswith(KEY_RESIDENT_PREFIX):
                    digest = name[len(KEY_RESIDENT_PREFIX) :]
                    old = residents.pop(digest, None)
                    if old is not None:
                        self.cache.pop(old.cred_id, None)
            assert credential.record is not None
            residents[credential.digest] = credential.record
        self._remember(credential)
        self._counter_load(credential, fresh=True)

    # -- lookup -------------------------------------------------------------------------------

    def _remember(self, credential: Credential) -> None:
        if len(self.cache) >= _CACHE_LIMIT:
            self.cache.pop(next(iter(self.cache)))
        self.cache[credential.cred_id] = credential

    def find(self, cred_id: bytes, rp_id_hash: bytes) -> Credential | None:
        """The credential with this ID bound to this RP, or None (never an error)."""
        credential = self.cache.get(cred_id)
        if credential is not None:
            return credential if credential.rp_id_hash == rp_id_hash else None
        if len(cred_id) != CREDENTIAL_ID_LENGTH or cred_id[0] != _VERSION:
            return None
        secret = self._secret()
        if secret is None:
            return None
        try:
            plain = secret[0].decrypt(cred_id[1 : 1 + _NONCE], cred_id[1 + _NONCE :], rp_id_hash)
        except InvalidTag:
            return None
        alg = _CODE_ALGS.get(plain[0])
        flags = plain[1]
        protect = flags & _FLAG_PROTECT_MASK
        if alg is None or protect == 0:
            return None
        private = plain[2:]
        key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
        if alg == CoseAlg.ES256:
            key = ec.derive_private_key(int.from_bytes(private, "big"), _P256)
        else:
            key = ed25519.Ed25519PrivateKey.from_private_bytes(private)
        discoverable = bool(flags & _FLAG_DISCOVERABLE)
        credential = Credential(
            cred_id, rp_id_hash, alg, private, key, CredProtect(protect), discoverable
        )
        if discoverable:
            record = self._residents().get(credential.digest)
            if record is None or record.cred_id != cred_id:
                return None  # deleted through credential management
            credential.record = record
        self._remember(credential)
        return credential

    def discoverable_for(self, rp_id_hash: bytes) -> list[Credential]:
        """Discoverable credentials of an RP, most recently created first (§6.2.2 step 12)."""
        records = [rec for rec in self._residents().values() if rec.rp_id_hash == rp_id_hash]
        records.sort(key=lambda rec: rec.seq, reverse=True)
        found = []
        for rec in records:
            credential = self.find(rec.cred_id, rp_id_hash)
            if credential is not None:
                found.append(credential)
        return found

    def resident_records(self) -> list[ResidentRecord]:
        return sorted(self._residents().values(), key=lambda rec: rec.seq)

    def resident_count(self) -> int:
        return len(self._residents())

    def record_for(self, cred_id: bytes) -> ResidentRecord | None:
        digest = hashlib.sha256(cred_id).digest()[:16].hex()
        record = self._residents().get(digest)
        return record if record is not None and record.cred_id == cred_id else None

    # -- changes ------------------------------------------------------------------------------

    def delete(self, record: ResidentRecord) -> None:
        """Delete a discoverable credential and its counter (credMgmt, §6.8.5)."""
        digest = hashlib.sha256(record.cred_id).digest()[:16].hex()
        with self._storage.transaction() as txn:
            txn.delete(KEY_RESIDENT_PREFIX + digest)
            txn.delete(KEY_COUNTER_PREFIX + digest)
        self._residents().pop(digest, None)
        self.cache.pop(record.cred_id, None)

    def update_user(self, record: ResidentRecord, user: dict[str, Any]) -> None:
        """Replace the user entity of a discoverable credential (credMgmt, §6.8.6)."""
        updated = replace(record, user=user)
        digest = hashlib.sha256(record.cred_id).digest()[:16].hex()
        self._storage.put(KEY_RESIDENT_PREFIX + digest, updated.encode())
        self._residents()[digest] = updated
        cached = self.cache.get(record.cred_id)
        if cached is not None:
            cached.record = updated

    # -- counters and per-credential secrets -----------------------------------------------

    def _counter_load(self, credential: Credential, *, fresh: bool = False) -> None:
        if fresh:
            credential.ceiling = 0
        else:
            raw = self._storage.get(KEY_COUNTER_PREFIX + credential.digest)
            credential.ceiling = _COUNTER.unpack(raw)[0] if raw and len(raw) == 8 else 0
        credential.counter_value = credential.ceiling

    def next_counter(self, credential: Credential) -> int:
        """The next signature counter value of a credential (strictly increasing, persistent)."""
        current = credential.counter_value
        if current is None:
            self._counter_load(credential)
            current = credential.counter_value
            assert current is not None
        value = current + 1
        if value > credential.ceiling:
            ceiling = current + self._reserve
            self._storage.put(KEY_COUNTER_PREFIX + credential.digest, _COUNTER.pack(ceiling))
            credential.ceiling = ceiling
        credential.counter_value = value
        return value

    def cred_random(self, credential: Credential, uv: bool) -> bytes:
        """CredRandomWithUV / CredRandomWithoutUV of a credential (hmac-secret, §12.5)."""
        secret = self._secret()
        if secret is None:
            raise CtapError(ERR.NO_CREDENTIALS)
        label = b"CredRandomWithUV" if uv else b"CredRandomWithoutUV"
        return hmac.new(secret[1], label + credential._private, hashlib.sha256).digest()

    def large_blob_key(self, credential: Credential) -> bytes | None:
        return credential.record.large_blob_key if credential.record else None
