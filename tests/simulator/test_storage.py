"""The storage contract of the band's flash (:mod:`simulator.band.storage`).

Atomic transactions, wrapped values, recovery from a torn journal tail, a refused damaged last
record and corrupt secure element, one holder at a time, and crypto-erase.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from nymi_device.errors import StorageError
from simulator.band import storage as storage_module
from simulator.band.storage import FlashStorage, _SecureElement

DEVICE = {"device/identity": b'{"serial": "AAAH-00125", "device_id": "device-identity-42"}'}


def _files(directory: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


def _assert_no_plaintext(directory: Path, values: list[bytes]) -> None:
    for name, data in _files(directory).items():
        for value in values:
            assert value not in data, f"{value!r} is in plaintext in {name}"


def _store(tmp_path: Path, *, durable: bool = False) -> FlashStorage:
    storage = FlashStorage.open(tmp_path / "flash", durable=durable)
    with storage.transaction() as txn:
        for key, value in DEVICE.items():
            txn.put(key, value)
    return storage


def _journal(tmp_path: Path) -> Path:
    return tmp_path / "flash" / "journal.log"


# -- transactions ------------------------------------------------------------------------------


def test_transaction_round_trips_puts_and_deletes(tmp_path: Path) -> None:
    storage = _store(tmp_path, durable=True)
    with storage.transaction() as txn:
        txn.put("user/ctap/cred/1", b"cred-one" * 100)
        txn.put("user/ctap/cred/2", b"cred-two" * 100)
        txn.put("user/ctap/index", b"[1, 2]")
        txn.put("device/boot", b"1")
    with storage.transaction() as txn:
        txn.delete("user/ctap/cred/1")
        txn.put("user/ctap/index", b"[2]")
        txn.put("user/ctap/cred/1", b"put then delete in one transaction")
        txn.delete("user/ctap/cred/1")
        txn.delete("user/never-existed")
    expected = {
        **DEVICE,
        "user/ctap/cred/2": b"cred-two" * 100,
        "user/ctap/index": b"[2]",
        "device/boot": b"1",
    }
    assert storage.snapshot() == expected
    assert storage.get("user/ctap/cred/1") is None
    assert storage.keys("user/") == ["user/ctap/cred/2", "user/ctap/index"]
    storage.close()
    with FlashStorage.open(tmp_path / "flash") as reopened:
        assert reopened.snapshot() == expected


def test_a_transaction_whose_block_raises_commits_nothing(tmp_path: Path) -> None:
    storage = _store(tmp_path)
    before = _journal(tmp_path).read_bytes()
    with pytest.raises(RuntimeError), storage.transaction() as txn:
        txn.put("user/half", b"written")
        raise RuntimeError("abandoned")
    assert storage.snapshot() == DEVICE
    assert _journal(tmp_path).read_bytes() == before
    storage.close()


def test_values_never_reach_the_files_in_plaintext(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(storage_module, "_COMPACT_AFTER_BYTES", 4096)
    storage = _store(tmp_path, durable=True)
    secrets_ = [b"PLAINTEXT-MARKER-%02d-" % i + os.urandom(8).hex().encode() for i in range(12)]
    for i, value in enumerate(secrets_):
        key = f"user/secret/{i}" if i % 2 else f"device/secret/{i}"
        storage.put(key, value * 40)  # 40 copies: big enough to trigger compactions
        _assert_no_plaintext(tmp_path / "flash", [value, *DEVICE.values()])
    assert len(_journal(tmp_path).read_bytes()) < 12 * 40 * 40  # compaction did run
    storage.crypto_erase()
    _assert_no_plaintext(tmp_path / "flash", [*secrets_, *DEVICE.values()])
    storage.close()


# -- recovery from an interrupted or damaged commit ---------------------------------------------


def _two_commits(tmp_path: Path) -> tuple[dict[str, bytes], dict[str, bytes], int, bytes]:
    """A store whose last journal record is commit B; returns (state A, state B, end of A, file)."""
    storage = _store(tmp_path)
    with storage.transaction() as txn:
        txn.put("user/ctap/cred/1", b"first credential" * 8)
        txn.put("user/ctap/index", b"[1]")
    state_a = storage.snapshot()
    end_of_a = _journal(tmp_path).stat().st_size
    with storage.transaction() as txn:
        txn.put("user/ctap/cred/2", b"second credential" * 8)
        txn.put("user/ctap/index", b"[1, 2]")
        txn.delete("user/ctap/cred/1")
    state_b = storage.snapshot()
    storage.close()
    return state_a, state_b, end_of_a, _journal(tmp_path).read_bytes()


def test_a_torn_journal_tail_is_dropped_at_every_byte_offset(tmp_path: Path) -> None:
    state_a, state_b, end_of_a, full = _two_commits(tmp_path)
    assert len(full) - end_of_a > 100
    for cut in range(end_of_a, len(full)):
        _journal(tmp_path).write_bytes(full[:cut])
        with FlashStorage.open(tmp_path / "flash") as storage:
            assert storage.snapshot() == state_a, f"torn at byte {cut}"
            assert _journal(tmp_path).stat().st_size == cut, "opening wrote to the journal"
            if cut % 16 == 0:  # the next commit cuts the torn tail off first
                storage.put("device/boot", b"%d" % cut)
        if cut % 16 == 0:
            with FlashStorage.open(tmp_path / "flash") as storage:
                assert storage.snapshot() == {**state_a, "device/boot": b"%d" % cut}
    _journal(tmp_path).write_bytes(full)
    with FlashStorage.open(tmp_path / "flash") as storage:
        assert storage.snapshot() == state_b


def test_a_flipped_byte_in_the_last_record_is_refused_not_dropped(tmp_path: Path) -> None:
    state_a, state_b, end_of_a, full = _two_commits(tmp_path)
    assert state_a != state_b
    for offset in range(end_of_a, len(full)):
        damaged = bytearray(full)
        damaged[offset] ^= 0xFF
        _journal(tmp_path).write_bytes(bytes(damaged))
        with pytest.raises(StorageError, match="is damaged"):
            FlashStorage.open(tmp_path / "flash")
        assert _journal(tmp_path).read_bytes() == bytes(damaged)
    _journal(tmp_path).write_bytes(full)
    with FlashStorage.open(tmp_path / "flash") as storage:
        assert storage.snapshot() == state_b


@pytest.mark.parametrize("damage", ["flipped-byte", "truncated", "empty", "garbage", "longer"])
def test_a_corrupt_secure_element_is_refused(tmp_path: Path, damage: str) -> None:
    _store(tmp_path).close()
    se = tmp_path / "flash" / "se.bin"
    good = se.read_bytes()
    damaged = {
        "flipped-byte": good[:40] + bytes([good[40] ^ 0x01]) + good[41:],
        "truncated": good[:-1],
        "empty": b"",
        "garbage": os.urandom(len(good)),
        "longer": good + b"\0",
    }[damage]
    se.write_bytes(damaged)
    journal = _journal(tmp_path).read_bytes()
    for _ in range(2):  # a refused open must not leave the flash locked
        with pytest.raises(StorageError) as info:
            FlashStorage.open(tmp_path / "flash")
        assert str(info.value) == f"secure element {se} is corrupt"
    # Nothing was "repaired": no new keys, the journal untouched.
    assert se.read_bytes() == damaged
    assert _journal(tmp_path).read_bytes() == journal
    se.write_bytes(good)
    with FlashStorage.open(tmp_path / "flash") as storage:
        assert storage.snapshot() == DEVICE


# -- one holder at a time -------------------------------------------------------------------------


def test_a_second_open_is_refused_while_the_first_holds_the_flash(tmp_path: Path) -> None:
    first = _store(tmp_path)
    with pytest.raises(StorageError, match="in use by another process"):
        FlashStorage.open(tmp_path / "flash")
    pid = os.fork()
    if pid == 0:  # another process
        code = 3
        try:
            FlashStorage.open(tmp_path / "flash")
        except StorageError as exc:
            code = 0 if "in use" in str(exc) else 2
        except BaseException:
            code = 4
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the other process was not refused"
    first.close()
    with FlashStorage.open(tmp_path / "flash") as again:
        assert again.snapshot() == DEVICE


def test_the_lock_dies_with_the_process_that_held_it(tmp_path: Path) -> None:
    _store(tmp_path).close()
    ready_r, ready_w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            FlashStorage.open(tmp_path / "flash")
            os.write(ready_w, b"R")
            while True:
                signal.pause()
        finally:
            os._exit(70)
    os.close(ready_w)
    try:
        assert os.read(ready_r, 1) == b"R"
        with pytest.raises(StorageError, match="in use"):
            FlashStorage.open(tmp_path / "flash")
    finally:
        os.kill(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        os.close(ready_r)
    with FlashStorage.open(tmp_path / "flash") as storage:
        assert storage.snapshot() == DEVICE


# -- crypto-erase -------------------------------------------------------------------------------


def _se(tmp_path: Path) -> _SecureElement:
    se = _SecureElement.decode((tmp_path / "flash" / "se.bin").read_bytes())
    assert se is not None
    return se


def test_crypto_erase_keeps_device_records_and_removes_every_user_record(tmp_path: Path) -> None:
    storage = _store(tmp_path, durable=True)
    user = {f"user/ctap/cred/{i}": b"USER-SECRET-%02d-" % i + os.urandom(32) for i in range(20)}
    with storage.transaction() as txn:
        for key, value in user.items():
            txn.put(key, value)
        txn.put("device/boot", b"7")
    device = {**DEVICE, "device/boot": b"7"}
    before = _se(tmp_path)
    storage.crypto_erase()
    assert storage.snapshot() == device
    assert storage.keys("user/") == []
    after = _se(tmp_path)
    assert after.device_key == before.device_key
    assert after.user_generation == before.user_generation + 1
    assert after.user_key != before.user_key
    storage.close()
    with FlashStorage.open(tmp_path / "flash") as reopened:
        assert reopened.snapshot() == device
        assert reopened.keys("user/") == []
        reopened.put("user/profile", b"a new wearer")
    for data in _files(tmp_path / "flash").values():
        assert b"user/ctap" not in data  # not even the record names survive
    _assert_no_plaintext(tmp_path / "flash", list(user.values()))
    with FlashStorage.open(tmp_path / "flash") as reopened:
        assert reopened.snapshot() == {**device, "user/profile": b"a new wearer"}


def test_a_failed_key_rotation_changes_nothing_and_loses_no_later_commit(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    storage = _store(tmp_path)
    storage.put("user/profile", b"enrolled")
    real_write = storage_module.atomic_write

    def failing_write(path: Path, data: bytes, *, durable: bool = True) -> None:
        if path.name == "se.bin":
            raise OSError(28, "No space left on device")
        real_write(path, data, durable=durable)

    monkeypatch.setattr(storage_module, "atomic_write", failing_write)
    with pytest.raises(StorageError, match="cannot rotate the user-data key"):
        storage.crypto_erase()
    monkeypatch.setattr(storage_module, "atomic_write", real_write)
    assert storage.snapshot() == {**DEVICE, "user/profile": b"enrolled"}
    storage.put("user/ctap/cred/1", b"registered after the failed wipe")
    storage.close()
    with FlashStorage.open(tmp_path / "flash") as reopened:
        assert reopened.snapshot() == {
            **DEVICE,
            "user/profile": b"enrolled",
            "user/ctap/cred/1": b"registered after the failed wipe",
        }


def test_a_failed_append_does_not_hide_later_commits(tmp_path: Path) -> None:
    fail_next = False

    def before_io(step: str) -> None:
        nonlocal fail_next
        if step == "journal-append" and fail_next:
            fail_next = False
            with open(_journal(tmp_path), "ab") as f:  # half a record reached the file...
                f.write(b"\x00\x00\x01\x00torn")
            raise OSError(28, "No space left on device")  # ...then the write failed

    storage = FlashStorage.open(tmp_path / "flash", durable=False, before_io=before_io)
    storage.put("device/identity", DEVICE["device/identity"])
    fail_next = True
    with pytest.raises(StorageError, match="cannot write band journal"):
        storage.put("user/lost", b"never acknowledged")
    storage.put("user/kept", b"acknowledged after the failure")
    storage.close()
    with FlashStorage.open(tmp_path / "flash") as reopened:
        assert reopened.snapshot() == {**DEVICE, "user/kept": b"acknowledged after the failure"}
