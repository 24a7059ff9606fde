"""The band's durable memory: a journaled, atomic, encrypted key-value flash.

Layout of one band's flash directory::

    se.bin        the emulated secure element: the device root key (never changes) and the
                  user-data master key with its generation (replaced by Delete User Data)
    journal.log   append-only journal of commits; each record is length + CRC32 + CBOR payload

Every value is stored wrapped (AES-256-GCM, the record's key name as associated data): records
under ``user/`` with the user-data master key, everything else with the device root key. Plain
values never reach the file, so keys never leave the emulated secure element unwrapped.

Atomicity: a commit is one journal record, written and fsync'd; a torn or corrupt tail is cut
off on open, so a reader sees exactly the commits that completed. The secure element file is
replaced by write-to-temporary + fsync + rename + directory fsync.

Crypto-erase (:meth:`FlashStorage.crypto_erase`) destroys the user master key *first*; from that
instant every ``user/`` record is unreadable, so a wipe interrupted at any later step still shows
the wiped state, and the next open completes it.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cbor2
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nymi_device.errors import StorageError

USER_PREFIX = "user/"
_SE_MAGIC = b"NYSE"
_SE_FORMAT = struct.Struct(">4sB32sI32sI")  # magic, version, device key, user gen, user key, crc
_JOURNAL_MAGIC = b"NYJ1"
_RECORD_HEADER = struct.Struct(">II")  # payload length, CRC32 of payload
_MAX_RECORD = 16 * 1024 * 1024
_COMPACT_AFTER_BYTES = 256 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes, *, durable: bool = True) -> None:
    """Replace ``path`` with ``data`` so that a crash leaves either the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if durable:
        _fsync_dir(path.parent)


@dataclass(frozen=True)
class _SecureElement:
    device_key: bytes
    user_generation: int
    user_key: bytes

    def encode(self) -> bytes:
        body = _SE_FORMAT.pack(
            _SE_MAGIC, 1, self.device_key, self.user_generation, self.user_key, 0
        )[:-4]
        return body + struct.pack(">I", zlib.crc32(body))

    @classmethod
    def decode(cls, data: bytes) -> _SecureElement | None:
        if len(data) != _SE_FORMAT.size:
            return None
        magic, version, device_key, gen, user_key, crc = _SE_FORMAT.unpack(data)
        if magic != _SE_MAGIC or version != 1 or crc != zlib.crc32(data[:-4]):
            return None
        return cls(device_key, gen, user_key)


class Transaction:
    """A set of puts and deletes that :meth:`FlashStorage.transaction` commits atomically."""

    def __init__(self) -> None:
        self.puts: dict[str, bytes] = {}
        self.deletes: set[str] = set()

    def put(self, key: str, value: bytes) -> None:
        self.deletes.discard(key)
        self.puts[key] = bytes(value)

    def delete(self, key: str) -> None:
        self.puts.pop(key, None)
        self.deletes.add(key)


class FlashStorage:
    """One band's flash. Open with :meth:`open`; only one process may hold it at a time."""

    def __init__(
        self,
        directory: Path,
        *,
        durable: bool = True,
        rng: Callable[[int], bytes] = os.urandom,
        before_io: Callable[[str], None] | None = None,
    ) -> None:
        self.directory = directory
        self._durable = durable
        self._rng = rng
        # Test seam: called before every write step (the crash tests kill the process there).
        self._before_io = before_io or (lambda step: None)
        self._values: dict[str, bytes] = {}
        self._se: _SecureElement
        self._journal_size = 0
        self._lock_fd: int | None = None

    # -- opening and recovery -------------------------------------------------------------

    @classmethod
    def open(
        cls,
        directory: Path,
        *,
        durable: bool = True,
        rng: Callable[[int], bytes] = os.urandom,
        before_io: Callable[[str], None] | None = None,
    ) -> FlashStorage:
        storage = cls(directory, durable=durable, rng=rng, before_io=before_io)
        storage._load()
        return storage

    def _load(self) -> None:
        try:
            self._recover()
        except BaseException:
            self.close()  # a refused open must not keep the flash locked
            raise

    def _recover(self) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            self._lock_fd = os.open(self.directory / "lock", os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._lock_fd)
                self._lock_fd = None
                raise StorageError(
                    f"band storage {self.directory} is in use by another process"
                ) from None
            self._se = self._load_secure_element()
            records, good_size = self._read_journal()
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot open band storage {self.directory}: {exc}") from None
        stale_user_records = False
        for payload in records:
            puts = payload.get("put", {})
            deletes = payload.get("del", [])
            if not isinstance(puts, dict) or not isinstance(deletes, list):
                continue
            for key, sealed in puts.items():
                value = self._unseal(key, sealed)
                if value is None:
                    stale_user_records = True
                    self._values.pop(key, None)
                else:
                    self._values[key] = value
            for key in deletes:
                self._values.pop(key, None)
        journal = self.directory / "journal.log"
        if journal.exists() and journal.stat().st_size != good_size:
            # A torn tail from an interrupted commit: cut it off.
            with open(journal, "r+b") as f:
                f.truncate(good_size)
                if self._durable:
                    os.fsync(f.fileno())
        self._journal_size = good_size
        if stale_user_records or good_size == 0:
            # An interrupted crypto-erase (or a fresh band): finish it by rewriting the journal.
            self._compact()

    def _load_secure_element(self) -> _SecureElement:
        path = self.directory / "se.bin"
        if path.exists():
            se = _SecureElement.decode(path.read_bytes())
            if se is None:
                raise StorageError(f"secure element {path} is corrupt")
            return se
        se = _SecureElement(self._rng(32), 1, self._rng(32))
        atomic_write(path, se.encode(), durable=self._durable)
        return se

    def _read_journal(self) -> tuple[list[dict[str, object]], int]:
        path = self.directory / "journal.log"
        if not path.exists():
            return [], 0
        data = path.read_bytes()
        if not data.startswith(_JOURNAL_MAGIC):
            if len(data) < len(_JOURNAL_MAGIC) and _JOURNAL_MAGIC.startswith(data):
                return [], 0  # torn while writing the header of a new journal
            raise StorageError(f"journal {path} is not a band journal")
        offset = len(_JOURNAL_MAGIC)
        records: list[dict[str, object]] = []
        while offset + _RECORD_HEADER.size <= len(data):
            length, crc = _RECORD_HEADER.unpack_from(data, offset)
            start = offset + _RECORD_HEADER.size
            payload = data[start : start + length]
            if length > _MAX_RECORD or len(payload) != length or zlib.crc32(payload) != crc:
                break
            try:
                decoded = cbor2.loads(payload)
            except (cbor2.CBORDecodeError, ValueError):
                break
            if not isinstance(decoded, dict):
                break
            records.append(decoded)
            offset = start + length
        return records, offset

    # -- wrapping ---------------------------------------------------------------------------

    def _key_for(self, name: str) -> tuple[bytes, int]:
        if name.startswith(USER_PREFIX):
            return self._se.user_key, self._se.user_generation
        return self._se.device_key, 0

    def _seal(self, name: str, value: bytes) -> list[object]:
        key, generation = self._key_for(name)
        nonce = self._rng(12)
        return [generation, nonce, AESGCM(key).encrypt(nonce, value, name.encode())]

    def _unseal(self, name: str, sealed: object) -> bytes | None:
        """The plain value, or ``None`` when it was sealed under a destroyed key."""
        key, generation = self._key_for(name)
        if not isinstance(sealed, list) or len(sealed) != 3 or sealed[0] != generation:
            return None
        try:
            return AESGCM(key).decrypt(sealed[1], sealed[2], name.encode())
        except (InvalidTag, TypeError, ValueError):
            return None

    # -- reading ----------------------------------------------------------------------------

    def get(self, key: str) -> bytes | None:
        return self._values.get(key)

    def keys(self, prefix: str = "") -> list[str]:
        return sorted(k for k in self._values if k.startswith(prefix))

    def snapshot(self) -> dict[str, bytes]:
        """Every plain value (for tests and diagnostics; never written anywhere)."""
        return dict(self._values)

    # -- writing ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Transaction]:
        """Collect puts and deletes; commit them as one journal record when the block ends."""
        txn = Transaction()
        yield txn
        self.commit(txn)

    def put(self, key: str, value: bytes) -> None:
        txn = Transaction()
        txn.put(key, value)
        self.commit(txn)

    def delete(self, key: str) -> None:
        txn = Transaction()
        txn.delete(key)
        self.commit(txn)

    def commit(self, txn: Transaction) -> None:
        if not txn.puts and not txn.deletes:
            return
        payload: dict[str, object] = {
            "put": {k: self._seal(k, v) for k, v in txn.puts.items()},
            "del": sorted(txn.deletes),
        }
        self._append(cbor2.dumps(payload))
        for key in txn.deletes:
            self._values.pop(key, None)
        self._values.update(txn.puts)
        if self._journal_size > _COMPACT_AFTER_BYTES:
            self._compact()

    def _append(self, payload: bytes) -> None:
        record = _RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        path = self.directory / "journal.log"
        try:
            self._before_io("journal-append")
            with open(path, "ab") as f:
                f.write(record)
                if self._durable:
                    f.flush()
                    os.fsync(f.fileno())
        except OSError as exc:
            # Drop a partly written record, or it would hide every later commit on the next open.
            with contextlib.suppress(OSError):
                os.truncate(path, self._journal_size)
            raise StorageError(f"cannot write band journal: {exc}") from None
        self._journal_size += len(record)

    def _compact(self) -> None:
        """Rewrite the journal as one record holding the present state (atomic replace)."""
        payload = cbor2.dumps(
            {"put": {k: self._seal(k, v) for k, v in sorted(self._values.items())}, "del": []}
        )
        record = _RECORD_HEADER.pack(len(payload), zlib.crc32(payload)) + payload
        self._before_io("journal-compact")
        try:
            atomic_write(self.directory / "journal.log", _JOURNAL_MAGIC + record,
                         durable=self._durable)
        except OSError as exc:
            raise StorageError(f"cannot compact band journal: {exc}") from None
        self._journal_size = len(_JOURNAL_MAGIC) + len(record)

    def crypto_erase(self) -> None:
        """Destroy every ``user/`` record: the master key first, then the records themselves."""
        self._before_io("se-rotate")
        rotated = _SecureElement(
            self._se.device_key, self._se.user_generation + 1, self._rng(32)
        )
        try:
            atomic_write(self.directory / "se.bin", rotated.encode(), durable=self._durable)
        except OSError as exc:
            raise StorageError(f"cannot rotate the user-data key: {exc}") from None
        # Only now is the new key the one on flash: seal nothing with it before.
        self._se = rotated
        # From here on every user record on disk is unreadable; drop them and compact.
        for key in [k for k in self._values if k.startswith(USER_PREFIX)]:
            del self._values[key]
        self._compact()

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> FlashStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
