"""The journal file of a band's flash: its record format and how a read tells damage from a tear.

``journal.log`` is a magic followed by records. A record (format 2, magic ``NYJ2``) is::

    u32 payload length | u32 CRC32 of the payload | u32 CRC32 of the 8 bytes before | payload

The payload is a CBOR map ``{"seq": commit number, "gen": user-key generation, "put": {...},
"del": [...]}``. Format 1 (``NYJ1``) records lack the header check and ``seq``/``gen``; they are
still read, and the next write rewrites the journal in format 2.

Only one thing can explain a record that is not whole: the power failed while it was being
appended. That leaves an *unfinished last record*: a header cut short, a payload shorter than its
(checked) length, or bytes that never reached the disk (zeros). Such a tail is dropped. Anything
else (a failed check, a record cut anywhere but at the end, a file shorter than its magic) is
damage, and :func:`parse_journal` raises :class:`JournalDamaged` naming where.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

import cbor2

MAGIC = b"NYJ2"
LEGACY_MAGIC = b"NYJ1"
_HEADER = struct.Struct(">III")  # payload length, payload CRC32, CRC32 of the first 8 bytes
_LEGACY_HEADER = struct.Struct(">II")  # payload length, payload CRC32
MAX_RECORD = 16 * 1024 * 1024


class JournalDamaged(Exception):
    """The journal holds something no interrupted write explains."""


@dataclass(frozen=True)
class ParsedJournal:
    records: list[dict[str, object]]
    #: End of the last whole record; bytes after it are an unfinished (torn) record.
    good_size: int
    legacy: bool


def encode_record(payload: dict[str, object]) -> bytes:
    body = cbor2.dumps(payload)
    head = struct.pack(">II", len(body), zlib.crc32(body))
    return head + struct.pack(">I", zlib.crc32(head)) + body


def new_journal(payload: dict[str, object]) -> bytes:
    return MAGIC + encode_record(payload)


def _decode_payload(data: bytes, offset: int) -> dict[str, object]:
    try:
        decoded = cbor2.loads(data)
    except (cbor2.CBORDecodeError, ValueError, TypeError, RecursionError):
        raise JournalDamaged(f"record at byte {offset} is not CBOR") from None
    if not isinstance(decoded, dict):
        raise JournalDamaged(f"record at byte {offset} is not a map")
    return decoded


def _record_end(data: bytes, offset: int, legacy: bool) -> int | None:
    """End of the whole record at ``offset``; None if it is an unfinished tail."""
    header = _LEGACY_HEADER if legacy else _HEADER
    rest = data[offset:]
    if len(rest) < header.size or not any(rest):
        return None
    if legacy:
        length, crc = _LEGACY_HEADER.unpack_from(data, offset)
    else:
        length, crc, head_crc = _HEADER.unpack_from(data, offset)
        if head_crc != zlib.crc32(data[offset : offset + 8]):
            raise JournalDamaged(f"record header at byte {offset} fails its check")
    length = int(length)
    if length > MAX_RECORD:
        raise JournalDamaged(f"record at byte {offset} claims {length} bytes")
    start = offset + header.size
    if start + length > len(data):
        return None
    if zlib.crc32(data[start : start + length]) != crc:
        raise JournalDamaged(f"record at byte {offset} fails its checksum")
    return start + length


def parse_journal(data: bytes) -> ParsedJournal:
    """The whole records of a journal file; raises :class:`JournalDamaged` on damage."""
    if data.startswith(MAGIC):
        legacy = False
    elif data.startswith(LEGACY_MAGIC):
        legacy = True
    elif len(data) < len(MAGIC):
        raise JournalDamaged(f"only {len(data)} bytes, shorter than its header")
    else:
        raise JournalDamaged("not a band journal")
    header = _LEGACY_HEADER if legacy else _HEADER
    offset = len(MAGIC)
    records: list[dict[str, object]] = []
    while offset < len(data):
        end = _record_end(data, offset, legacy)
        if end is None:
            break
        records.append(_decode_payload(data[offset + header.size : end], offset))
        offset = end
    if not records:
        raise JournalDamaged("no whole record")
    return ParsedJournal(records, offset, legacy)
