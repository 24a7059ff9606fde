"""``nymi-band info`` / ``status`` / ``demo`` against simulated bands."""

from __future__ import annotations

import json

import pytest

from hosttools.cli import main
from simulator.fleet import Fleet


def band_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_info_and_status_of_a_simulated_band(
        nymi_fleet: Fleet, nymi_band: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--target", f"sim:{nymi_band}", "--sim-dir", str(nymi_fleet.root)]
    code, out, _ = band_cli(capsys, *base, "info", "--json")
    assert code == 0
    info = json.loads(out)
    assert info["serial"] == nymi_band
    assert info["model"] == "Nymi Band 3.0" and info["fixture"] == "nymi-band-3.0"
    assert len(info["nfc_id"]) == 14 and info["capabilities"]["fido2"] is True
    code, out, _ = band_cli(capsys, *base, "status", "--json")
    status = json.loads(out)
    assert status["screen"] == "No User" and status["enrollment"] == "unenrolled"
    code, out, _ = band_cli(capsys, *base, "status")
    assert code == 0 and "No User" in out


def test_unknown_band_is_one_line(nymi_fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = band_cli(capsys, "--target", "sim:ZZZZ-00009", "--sim-dir",
                              str(nymi_fleet.root), "info")
    assert code == 1
    assert err.startswith("error: no simulated band ZZZZ-00009") and err.count("\n") == 1


@pytest.mark.parametrize("target", ["AAAH-00125", "warp:AAAH-00125", "sim:lowercase"])
def test_bad_target_is_one_line(target: str, nymi_fleet: Fleet,
                                capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = band_cli(capsys, "--target", target, "--sim-dir", str(nymi_fleet.root), "info")
    assert code == 2
    assert err.startswith("error: ") and err.count("\n") == 1
