"""The band's durable memory: a journaled, atomic, encrypted key-value flash.

Layout of one band's flash directory::

    se.bin        the emulated secure element: the device root key (never changes) and the
                  user-data master key with its generation (replaced by Delete User Data)
    journal.log   append-only journal of commits (format: :mod:`simulator.band.journal`)

Every value is stored wrapped (AES-256-GCM, the record's key name as associated data): records
under ``user/`` with the user-data master key, everything else with the device root key. Plain
values never reach the file, so keys never leave the emulated secure element unwrapped.

Atomicity: a commit is one journal record, written and fsync'd; an unfinished last record (the
power failed while it was appended) is ignored on open and cut off by the next write, so a reader
sees exactly the commits that completed. Any other damage (a failed check, a missing or foreign
file) is refused with one line and nothing is written: opening only reads. The secure element
file is replaced by write-to-temporary + fsync + rename + directory fsync.

Crypto-erase (:meth:`FlashStorage.crypto_erase`) destroys the user master key *first*; from that
instant every ``user/`` record is unreadable, so a wipe interrupted at any later step still shows
the wiped state, and the next write completes it.
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

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from nymi_device.errors import StorageError
from simulator.band.journal import JournalDamaged, encode_record, new_journal, parse_journal

USER_PREFIX = "user/"
_SE_MAGIC = b"NYSE"
_SE_FORMAT = struct.Struct(">4sB32sI32sI")  # magic, version, device key, user gen, user key, crc
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
    """One band's flash. Open with :meth:`open`; only one process may hold it at a time.

    Opening only reads: a torn journal tail is cut, and an interrupted crypto-erase finished,
    by the first write after the open. Damage is refused (:class:`StorageError`, one line)
    without touching a file.
    """

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
        self._seq = 0
        #: The journal must be rewritten before the next append (an interrupted crypto-erase
        #: left records under a destroyed key, or the journal is in the older format).
        self._rewrite_pending = False
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
        create: bool = True,
    ) -> FlashStorage:
        """Open a band's flash; ``create`` a new one where there is none (nothing at all)."""
        storage = cls(directory, durable=durable, rng=rng, before_io=before_io)
        try:
            storage._load(create)
        except BaseException:
            storage.close()  # a refused open must not keep the flash locked
            raise
        return storage

    @property
    def sequence(self) -> int:
        """Number of the last commit on flash; it only grows (compaction keeps it)."""
        return self._seq

    def _load(self, create: bool) -> None:
        se_path, journal_path = self.directory / "se.bin", self.directory / "journal.log"
        try:
            fresh = not se_path.exists() and not journal_path.exists()
            if fresh and create:
                self.directory.mkdir(parents=True, exist_ok=True)
            self._lock()
            if fresh and create:
                self._create()
                return
            if not se_path.exists():
                raise StorageError(f"secure element {se_path} is missing")
            if not journal_path.exists():
                raise StorageError(f"journal {journal_path} is missing")
            se = _SecureElement.decode(se_path.read_bytes())
            if se is None:
                raise StorageError(f"secure element {se_path} is corrupt")
            self._se = se
            data = journal_path.read_bytes()
        except OSError as exc:
            if isinstance(exc, StorageError):
                raise
            raise StorageError(f"cannot open band storage {self.directory}: {exc}") from None
        try:
            parsed = parse_journal(data)
            self._replay(parsed.records)
        except JournalDamaged as exc:
            raise StorageError(f"journal {journal_path} is damaged: {exc}") from None
        self._journal_size = parsed.good_size
        self._rewrite_pending = self._rewrite_pending or parsed.legacy

    def _lock(self) -> None:
        """Hold the flash directory itself locked (a lock file would be a write)."""
        self._lock_fd = os.open(self.directory, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StorageError(
                f"band storage {self.directory} is in use by another process"
            ) from None

    def _create(self) -> None:
        self._se = _SecureElement(self._rng(32), 1, self._rng(32))
        atomic_write(self.directory / "se.bin", self._se.encode(), durable=self._durable)
        self._compact()

    def _replay(self, records: list[dict[str, object]]) -> None:
        """Apply the journal's records; a record this secure element cannot own is damage."""
        last_seq = -1
        for index, payload in enumerate(records):
            seq = payload.get("seq", index)
            gen = payload.get("gen", 0)
            puts, deletes = payload.get("put", {}), payload.get("del", [])
            if (not isinstance(seq, int) or not isinstance(gen, int) or seq <= last_seq
                    or not isinstance(puts, dict) or not isinstance(deletes, list)):
                raise JournalDamaged(f"record {index} is malformed")
            if gen > self._se.user_generation:
                raise JournalDamaged(
                    f"record {index} was written after the secure element's user key")
            last_seq = seq
            for key, sealed in puts.items():
                if not isinstance(key, str):
                    raise JournalDamaged(f"record {index} is malformed")
                value = self._unseal(key, sealed)
                if value is not None:
                    self._values[key] = value
                elif self._is_erased(key, sealed):
                    self._rewrite_pending = True  # an interrupted crypto-erase
                    self._values.pop(key, None)
                else:
                    raise JournalDamaged(
                        f"record {index} does not open with this band's secure element")
            for key in deletes:
                if not isinstance(key, str):
                    raise JournalDamaged(f"record {index} is malformed")
                self._values.pop(key, None)
        self._seq = max(last_seq, 0)

    def _is_erased(self, name: str, sealed: object) -> bool:
        """A ``user/`` value sealed under an older user key, which crypto-erase destroyed."""
        return (name.startswith(USER_PREFIX) and isinstance(sealed, list) and len(sealed) == 3
                and isinstance(sealed[0], int) and 0 < sealed[0] < self._se.user_generation)

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
        if self._rewrite_pending:
            self._commit_by_rewrite(txn)
            return
        payload: dict[str, object] = {
            "seq": self._seq + 1,
            "gen": self._se.user_generation,
            "put": {k: self._seal(k, v) for k, v in txn.puts.items()},
            "del": sorted(txn.deletes),
        }
        self._append(encode_record(payload))
        self._seq += 1
        for key in txn.deletes:
            self._values.pop(key, None)
        self._values.update(txn.puts)
        if self._journal_size > _COMPACT_AFTER_BYTES:
            self._compact()

    def _commit_by_rewrite(self, txn: Transaction) -> None:
        """Commit as a new journal holding the whole state (finishes an interrupted erase)."""
        values = {k: v for k, v in self._values.items() if k not in txn.deletes}
        values.update(txn.puts)
        self._compact(values, self._seq + 1)
        self._values = values

    def _append(self, record: bytes) -> None:
        path = self.directory / "journal.log"
        try:
            self._before_io("journal-append")
            if path.stat().st_size != self._journal_size:
                # A torn tail from an interrupted commit: cut it off before appending.
                os.truncate(path, self._journal_size)
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

    def _compact(self, values: dict[str, bytes] | None = None, seq: int | None = None) -> None:
        """Rewrite the journal as one record holding the present state (atomic replace)."""
        state = self._values if values is None else values
        seq = self._seq if seq is None else seq
        data = new_journal({
            "seq": seq,
            "gen": self._se.user_generation,
            "put": {k: self._seal(k, v) for k, v in sorted(state.items())},
            "del": [],
        })
        self._before_io("journal-compact")
        try:
            atomic_write(self.directory / "journal.log", data, durable=self._durable)
        except OSError as exc:
            raise StorageError(f"cannot compact band journal: {exc}") from None
        self._journal_size = len(data)
        self._seq = seq
        self._rewrite_pending = False

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
        self._rewrite_pending = True  # if the rewrite fails, the next commit rewrites
        self._compact(seq=self._seq + 1)

    def close(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> FlashStorage:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
