"""``nymi-sim``: a band lifecycle driven command by command, and refusals that change nothing."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.fixtures import FIXTURE_DIR

SERIAL = "AAAH-00125"


def sim(capsys: pytest.CaptureFixture[str], sim_dir: Path, *args: str) -> tuple[int, dict, str]:
    code = main([*args, "--sim-dir", str(sim_dir), "--json"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 and out.strip() else {}), err


def tree_digest(root: Path) -> str:
    """Every file's path and content under ``root``."""
    h = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        h.update(str(path.relative_to(root)).encode())
        if path.is_file():
            h.update(path.read_bytes())
    return h.hexdigest()


@pytest.fixture
def fleet_dir(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    code, out, _ = sim(capsys, tmp_path / "fleet", "band", "add", "--fixture", "nymi-band-3.0",
                       "--serial", SERIAL)
    assert code == 0 and out["screen"] == "No User"
    return tmp_path / "fleet"


def test_lifecycle_command_by_command(fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sim(capsys, fleet_dir, "wear", SERIAL)
    assert code == 0 and out["screen"] == "Setup code"
    assert out["state"]["enrollment"] == "setup-code-shown"
    code, out, _ = sim(capsys, fleet_dir, "remove", SERIAL)
    assert out["screen"] == "No User" and out["haptics"] == []
    code, out, _ = sim(capsys, fleet_dir, "charge", SERIAL)
    assert out["state"]["on_charger"] is True
    code, out, _ = sim(capsys, fleet_dir, "hold-button", SERIAL, "bottom", "10")
    assert code == 0
    assert out["screens"] == ["Delete User Data", "USER DATA DELETED"]
    assert out["haptics"] == ["double-quick"]
    code, out, _ = sim(capsys, fleet_dir, "battery", SERIAL, "50")
    assert out["state"]["battery_pct"] == 50
    code, out, _ = sim(capsys, fleet_dir, "wait", SERIAL, "3600")
    assert out["state"]["battery_pct"] == 100  # on the charger for an hour
    code, out, _ = sim(capsys, fleet_dir, "band", "list")
    assert [row["serial"] for row in out] == [SERIAL]


def test_finger_on_an_unenrolled_band_is_reported_not_fatal(
        fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim(capsys, fleet_dir, "wear", SERIAL)
    code, out, _ = sim(capsys, fleet_dir, "finger", SERIAL, "--no-match")
    assert code == 0
    assert out["events"][-1]["kind"] == "refused"


@pytest.mark.parametrize("args", [
    ["wear", "ZZZZ-00001"],                       # unknown serial
    ["wear", "not-a-serial"],                     # malformed serial
    ["hold-button", SERIAL, "middle", "3"],       # no such button
    ["battery", SERIAL, "140"],                   # impossible level
    ["remove", SERIAL],                           # not on a wrist
    ["band", "add", "--fixture", "nymi-band-3.0", "--serial", SERIAL],   # duplicate
    ["band", "add", "--fixture", "no-such-model", "--serial", "BBBB-00001"],
])
def test_bad_input_is_one_line_and_changes_nothing(
        fleet_dir: Path, capsys: pytest.CaptureFixture[str], args: list[str]) -> None:
    before = tree_digest(fleet_dir)
    code, _, err = sim(capsys, fleet_dir, *args)
    assert code != 0
    assert err.startswith("error: ") and err.count("\n") == 1
    assert tree_digest(fleet_dir) == before


def test_button_on_a_dead_band_is_refused_and_changes_nothing(
        fleet_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = sim(capsys, fleet_dir, "battery", SERIAL, "1")
    assert out["state"]["power"] == "off" and out["screens"][0] == "Critical Battery"
    before = tree_digest(fleet_dir)
    code, _, err = sim(capsys, fleet_dir, "hold-button", SERIAL, "bottom", "10")
    assert code == 1
    assert err == (f"error: band {SERIAL} is off (battery flat): cannot press the bottom "
                   "button; put it on the charger first\n")
    assert tree_digest(fleet_dir) == before


def test_malformed_fixture_is_refused_and_changes_nothing(
        fleet_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
        monkeypatch: pytest.MonkeyPatch) -> None:
    fixtures = tmp_path / "fixtures"
    shutil.copytree(FIXTURE_DIR, fixtures)
    bad = fixtures / "nymi-band-3.0.toml"
    bad.write_text(bad.read_text().replace("lockout_failures = 10", "lockout_failures = -1"))
    monkeypatch.setenv("NYMI_FIXTURE_DIR", str(fixtures))
    before = tree_digest(fleet_dir)
    code, _, err = sim(capsys, fleet_dir, "band", "add", "--fixture", "nymi-band-3.0",
                       "--serial", "BBBB-00001")
    assert code == 2
    assert err == ("error: nymi-band-3.0.toml: field limits.lockout_failures: expected greater "
                   "than or equal to 1, got -1\n")
    assert tree_digest(fleet_dir) == before


def test_installed_command_prints_no_traceback(fleet_dir: Path) -> None:
    exe = Path(sys.executable).with_name("nymi-sim")
    result = subprocess.run([str(exe), "hold-button", "QQQQ-11111", "top", "1",
                             "--sim-dir", str(fleet_dir)],
                            capture_output=True, text=True, timeout=60,
                            env={**os.environ, "NO_COLOR": "1"})
    assert result.returncode == 1
    assert result.stderr.startswith("error: no simulated band QQQQ-11111")
    assert "Traceback" not in result.stderr and result.stderr.count("\n") == 1
