"""Damage is not a torn write: only an unfinished last record may be dropped, and opening reads.

A power cut can leave the journal's last record unfinished; nothing else explains a record that
fails its checks, a missing file or one shorter than its header. Those are refused with one
line, and the refused open writes nothing, so putting the right file back restores the band.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from nymi_device.errors import StorageError
from simulator.band.storage import FlashStorage

DEVICE = {"device/identity": b'{"serial": "AAAH-00125"}'}


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _history(tmp_path: Path) -> tuple[Path, list[int], list[dict[str, bytes]]]:
    """A flash with several commits; returns it, each record's end offset and each state."""
    directory = tmp_path / "flash"
    storage = FlashStorage.open(directory, durable=False)
    journal = directory / "journal.log"
    ends, states = [journal.stat().st_size], [storage.snapshot()]
    steps: list[tuple[dict[str, bytes], list[str]]] = [
        (DEVICE, []),
        ({"user/profile": b"enrolled", "user/ctap/cred/1": b"credential one"}, []),
        ({"user/ctap/counter/1": b"1"}, []),
        ({"user/ctap/cred/2": b"credential two"}, ["user/ctap/cred/1"]),
        ({"user/ctap/counter/1": b"2", "user/ctap/counter/2": b"7"}, []),
    ]
    for puts, deletes in steps:
        with storage.transaction() as txn:
            for key, value in puts.items():
                txn.put(key, value)
            for key in deletes:
                txn.delete(key)
        ends.append(journal.stat().st_size)
        states.append(storage.snapshot())
    storage.close()
    return directory, ends, states


def _refused(directory: Path) -> str:
    before = _files(directory)
    with pytest.raises(StorageError) as info:
        FlashStorage.open(directory, durable=False)
    assert _files(directory) == before, "a refused open changed the flash"
    message = str(info.value)
    assert "\n" not in message
    return message


def test_a_flipped_byte_anywhere_but_a_torn_tail_is_refused(tmp_path: Path) -> None:
    directory, _ends, states = _history(tmp_path)
    journal = directory / "journal.log"
    full = journal.read_bytes()
    for offset in range(len(full)):
        damaged = bytearray(full)
        damaged[offset] ^= 0x01
        journal.write_bytes(bytes(damaged))
        message = _refused(directory)
        assert "journal" in message, offset
    journal.write_bytes(full)
    with FlashStorage.open(directory) as storage:
        assert storage.snapshot() == states[-1]


def test_a_flipped_deletion_record_does_not_bring_a_credential_back(tmp_path: Path) -> None:
    directory, ends, _ = _history(tmp_path)
    journal = directory / "journal.log"
    full = journal.read_bytes()
    damaged = bytearray(full)
    damaged[ends[4] - 3] ^= 0x80  # inside the record that deletes credential one
    journal.write_bytes(bytes(damaged))
    _refused(directory)


def test_a_damaged_last_record_keeps_the_counter(tmp_path: Path) -> None:
    directory, _ends, _ = _history(tmp_path)
    journal = directory / "journal.log"
    damaged = bytearray(journal.read_bytes())
    damaged[-2] ^= 0x10
    journal.write_bytes(bytes(damaged))
    _refused(directory)


def test_only_an_unfinished_last_record_is_dropped(tmp_path: Path) -> None:
    directory, ends, states = _history(tmp_path)
    journal = directory / "journal.log"
    full = journal.read_bytes()
    for cut in range(ends[-2] + 1, len(full)):
        journal.write_bytes(full[:cut])
        with FlashStorage.open(directory, durable=False) as storage:
            assert storage.snapshot() == states[-2], cut
        assert journal.read_bytes() == full[:cut], "opening wrote to the journal"
    # A zero-filled tail (a write whose data never reached the disk) is torn too.
    journal.write_bytes(full + bytes(40))
    with FlashStorage.open(directory, durable=False) as storage:
        assert storage.snapshot() == states[-1]
        storage.put("device/boot", b"1")  # the first write cuts the torn tail off first
    with FlashStorage.open(directory, durable=False) as storage:
        assert storage.snapshot() == {**states[-1], "device/boot": b"1"}


@pytest.mark.parametrize("size", [0, 1, 3, 4])
def test_a_journal_shorter_than_its_first_record_is_refused(tmp_path: Path, size: int) -> None:
    directory, _, _ = _history(tmp_path)
    journal = directory / "journal.log"
    journal.write_bytes(journal.read_bytes()[:size])
    _refused(directory)
    assert journal.stat().st_size == size


def test_a_missing_file_is_refused_and_nothing_is_recreated(tmp_path: Path) -> None:
    directory, _, states = _history(tmp_path)
    for name in ("se.bin", "journal.log"):
        path = directory / name
        good = path.read_bytes()
        path.unlink()
        assert name in _refused(directory)
        assert not path.exists()
        path.write_bytes(good)
    with FlashStorage.open(directory) as storage:
        assert storage.snapshot() == states[-1]


def test_another_bands_secure_element_is_refused(tmp_path: Path) -> None:
    directory, _, _states = _history(tmp_path)
    other, _, _ = _history(tmp_path / "other")
    good = (directory / "se.bin").read_bytes()
    (directory / "se.bin").write_bytes((other / "se.bin").read_bytes())
    _refused(directory)
    (directory / "se.bin").write_bytes(good)
    (directory / "journal.log").write_bytes((other / "journal.log").read_bytes())
    _refused(directory)


def test_an_older_secure_element_after_a_wipe_is_refused(tmp_path: Path) -> None:
    directory, _, _ = _history(tmp_path)
    before_wipe = (directory / "se.bin").read_bytes()
    with FlashStorage.open(directory) as storage:
        storage.crypto_erase()
        storage.put("user/profile", b"a new wearer")
    (directory / "se.bin").write_bytes(before_wipe)
    _refused(directory)


def test_an_interrupted_wipe_is_finished_by_the_next_write_not_by_opening(
        tmp_path: Path) -> None:
    directory, _, _states = _history(tmp_path)
    journal = directory / "journal.log"
    with FlashStorage.open(directory) as storage:
        old_journal = journal.read_bytes()
        storage.crypto_erase()
    journal.write_bytes(old_journal)  # the key was rotated, the journal not yet rewritten
    with FlashStorage.open(directory) as storage:
        assert storage.snapshot() == DEVICE
        assert journal.read_bytes() == old_journal, "opening rewrote the journal"
        storage.put("device/boot", b"1")
    assert b"user/ctap" not in journal.read_bytes()
    with FlashStorage.open(directory) as storage:
        assert storage.snapshot() == {**DEVICE, "device/boot": b"1"}


def test_a_new_flash_is_created_only_in_an_empty_place(tmp_path: Path) -> None:
    with FlashStorage.open(tmp_path / "new") as storage:
        assert storage.snapshot() == {}
    (tmp_path / "stray").mkdir()
    (tmp_path / "stray" / "journal.log").write_bytes(os.urandom(10))
    _refused(tmp_path / "stray")
