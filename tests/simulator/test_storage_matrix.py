"""The storage corruption matrix, through ``nymi-sim``.

Every file of a band's directory is damaged in every way a disk or an operator damages files: the
journal truncated at each record boundary and inside each record, a byte flipped in each record
(header and payload), the secure element truncated and flipped, each file deleted and each file
swapped with another band's. After each case ``nymi-sim status`` and then ``nymi-sim wait 0``
either see exactly the band's last durable state (its status and every value on its flash) or
are refused with one line, the files left byte for byte as they were.

The commands run in-process (``simulator.cli.main``); a few cases also run as real processes.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from simulator.band.storage import FlashStorage
from simulator.cli import main
from simulator.control import apply_action
from simulator.fleet import Fleet

SERIAL = "AAAH-00125"
OTHER = "AAAH-00126"
_HEADER = struct.Struct(">III")
FILES = ["flash/se.bin", "flash/journal.log", "band.json", "world.json", "events.jsonl"]

Damage = Callable[[Path, Path], None]  # (the band's directory, the other band's directory)


def _sim(root: Path, *args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main([*args, "--sim-dir", str(root)])
    out, err = capsys.readouterr()
    return code, out, err


def _enroll(band_fleet: Fleet, label: str) -> None:
    with band_fleet.open_band(SERIAL) as band:
        apply_action(band, "wear", {})
        apply_action(band, "enter-setup-code", {"code": band.setup_code})
        apply_action(band, "start-capture", {})
        for _ in range(band.fixture.limits.enrollment_touches):
            apply_action(band, "finger", {})
        apply_action(band, "set-label", {"label": label})
        apply_action(band, "apply-policy", {})


def _digest(band_dir: Path) -> dict[str, str]:
    return {str(p.relative_to(band_dir)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(band_dir.rglob("*")) if p.is_file()}


@dataclass(frozen=True)
class Baseline:
    root: Path
    status: dict[str, object]
    flash: dict[str, bytes]
    record_ends: list[int]


def _record_ends(journal: bytes) -> list[int]:
    ends, offset = [4], 4
    while offset < len(journal):
        length = _HEADER.unpack_from(journal, offset)[0]
        offset += _HEADER.size + length
        ends.append(offset)
    return ends


def _flash(band_dir: Path) -> dict[str, bytes]:
    with FlashStorage.open(band_dir / "flash", create=False) as storage:
        return storage.snapshot()


@pytest.fixture(scope="module")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Baseline]:
    """Two bands; the first enrolled, wiped, enrolled again, with failures and a new policy."""
    root = tmp_path_factory.mktemp("matrix") / "fleet"
    fleet = Fleet(root, durable=False)
    for serial in (SERIAL, OTHER):
        fleet.add_band("nymi-band-3.0", serial)
    with fleet.open_band(OTHER) as other:
        apply_action(other, "wear", {})
    _enroll(fleet, "first")
    with fleet.open_band(SERIAL) as band:
        for action, params in [("remove", {}), ("charge", {}),
                               ("hold", {"button": "bottom", "seconds": 10}), ("uncharge", {})]:
            apply_action(band, action, params)
    _enroll(fleet, "second")
    with fleet.open_band(SERIAL) as band:
        apply_action(band, "remove", {})
        apply_action(band, "wear", {})
        apply_action(band, "finger", {"match": False})
        apply_action(band, "finger", {"match": False})
        apply_action(band, "finger", {})
        apply_action(band, "update-policy", {"liveness": False, "haptics": True})
        apply_action(band, "wait", {"seconds": 100})
    band_dir = root / "bands" / SERIAL
    with fleet.open_band(SERIAL, save=False) as band:
        status = band.status().to_dict()
    ends = _record_ends((band_dir / "flash" / "journal.log").read_bytes())
    assert len(ends) >= 6, "the journal should hold several records"
    yield Baseline(root, status, _flash(band_dir), ends)


def _cases(base: Baseline) -> Iterator[tuple[str, Damage]]:
    def truncate(name: str, size: int) -> Damage:
        return lambda mine, theirs: (mine / name).write_bytes((mine / name).read_bytes()[:size])

    def flip(name: str, offset: int) -> Damage:
        def damage(mine: Path, theirs: Path) -> None:
            data = bytearray((mine / name).read_bytes())
            data[offset % len(data)] ^= 0x01
            (mine / name).write_bytes(bytes(data))
        return damage

    def delete(name: str) -> Damage:
        return lambda mine, theirs: (mine / name).unlink()

    def swap(name: str) -> Damage:
        return lambda mine, theirs: (mine / name).write_bytes((theirs / name).read_bytes())

    journal = "flash/journal.log"
    ends = base.record_ends
    for size in [0, 2, *ends[:-1]]:
        yield f"journal truncated at boundary {size}", truncate(journal, size)
    for start, end in zip(ends, ends[1:], strict=False):
        for size in sorted({start + 1, start + _HEADER.size - 1, start + _HEADER.size,
                            (start + end) // 2, end - 1}):
            yield f"journal truncated inside the record at {start} ({size})", truncate(journal,
                                                                                        size)
        for offset in sorted({start, start + 5, start + 9, start + _HEADER.size,
                              (start + end) // 2, end - 1}):
            yield f"journal byte {offset} flipped", flip(journal, offset)
    for offset in [0, 3, 4, 5, 36, 40, 72, 76]:
        yield f"se.bin byte {offset} flipped", flip("flash/se.bin", offset)
    for size in [0, 4, 40, 76]:
        yield f"se.bin truncated to {size}", truncate("flash/se.bin", size)
    for name in ["band.json", "world.json"]:
        size = len((base.root / "bands" / SERIAL / name).read_bytes())
        for offset in range(0, size, max(1, size // 24)):
            yield f"{name} byte {offset} flipped", flip(name, offset)
        for cut in [0, 1, size // 2, size - 2]:
            yield f"{name} truncated to {cut}", truncate(name, cut)
    for name in FILES:
        yield f"{name} deleted", delete(name)
        yield f"{name} swapped with another band's", swap(name)
    yield "events.jsonl truncated", truncate("events.jsonl", 100)


def _check_case(base: Baseline, work: Path, label: str, damage: Damage,
                capsys: pytest.CaptureFixture[str]) -> str:
    """Damage a fresh copy of the fleet and run the commands; returns 'opened' or 'refused'."""
    if work.exists():
        shutil.rmtree(work)
    shutil.copytree(base.root, work)
    mine, theirs = work / "bands" / SERIAL, work / "bands" / OTHER
    damage(mine, theirs)
    before = _digest(mine)
    outcomes = []
    for args in (["status", SERIAL, "--json"], ["wait", SERIAL, "0", "--json"]):
        code, out, err = _sim(work, *args, capsys=capsys)
        if code == 0:
            state = json.loads(out)["state"]
            assert state == base.status, f"{label}: {args[0]} opened to another state"
            assert _flash(mine) == base.flash, f"{label}: {args[0]} opened other flash"
            outcomes.append("opened")
        else:
            lines = err.strip().splitlines()
            assert len(lines) == 1 and lines[0].startswith("error: "), f"{label}: {err}"
            assert _digest(mine) == before, f"{label}: refused, but files changed"
            outcomes.append("refused")
    assert outcomes[0] == outcomes[1], f"{label}: status {outcomes[0]}, wait {outcomes[1]}"
    return outcomes[0]


def test_every_damage_opens_the_last_durable_state_or_is_refused(
        baseline: Baseline, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    results: dict[str, str] = {}
    for label, damage in _cases(baseline):
        results[label] = _check_case(baseline, tmp_path / "work", label, damage, capsys)
    assert len(results) > 100
    # Damage to the durable files is never survived silently; only the event log is not state.
    opened = sorted(label for label, outcome in results.items() if outcome == "opened")
    assert all(label.startswith("events.jsonl") for label in opened), opened
    with capsys.disabled():
        print(f"\ncorruption matrix: {len(results)} cases, {len(opened)} opened, "
              f"{len(results) - len(opened)} refused")


@pytest.mark.parametrize("file,damage", [("flash/se.bin", "delete"),
                                         ("flash/journal.log", "flip"),
                                         ("world.json", "garbage")])
def test_damage_as_a_real_process_is_one_line(
        baseline: Baseline, tmp_path: Path, file: str, damage: str) -> None:
    work = tmp_path / "fleet"
    shutil.copytree(baseline.root, work)
    path = work / "bands" / SERIAL / file
    if damage == "delete":
        path.unlink()
    elif damage == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.write_bytes(b"\x00garbage{")
    before = _digest(work / "bands" / SERIAL)
    proc = subprocess.run(
        [sys.executable, "-m", "simulator.cli", "status", SERIAL, "--sim-dir", str(work)],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 1, proc.stdout
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith("error: ") and "Traceback" not in proc.stderr
    assert _digest(work / "bands" / SERIAL) == before
