"""``nymi-band demo`` and the NES commands, as people run them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hosttools.cli import main


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_demo_plays_the_documented_example_and_leaves_the_site(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--sim-dir", str(tmp_path / "fleet")]
    code, out, _ = run(capsys, *sim, "demo", "--json")
    assert code == 0
    result = json.loads(out)
    bands = {b["serial"]: (b["is_active"], b["is_primary"])
             for b in result["user_properties"]["bands"]}
    assert bands == {"AAAH-00125": (False, True), "ACAK-00056": (True, False)}
    assert result["previous_owner"]["bands"] == []
    # The same outcome afterwards, from the site the demo left in the fleet directory.
    code, out, _ = run(capsys, *sim, "nes", "user", "show", "tw-user2", "--json")
    shown = json.loads(out)
    assert shown["account"] == "CORP\\tw-user2"
    assert [(b["serial"], b["is_active"], b["is_primary"]) for b in shown["bands"]] == [
        ("AAAH-00125", False, True), ("ACAK-00056", True, False)]
    assert set(shown["bands"][0]) >= {"serial", "is_active", "is_primary", "notes", "created"}
    code, out, _ = run(capsys, *sim, "nes", "user", "show", "tw-user2")
    assert "AAAH-00125" in out and "Primary" in out and "Active" in out
    # Running the demo again rebuilds the same site.
    code, out, _ = run(capsys, *sim, "demo", "--json")
    assert code == 0 and json.loads(out)["user_properties"]["bands"][1]["is_active"]


def test_nes_commands_and_a_cli_enrollment(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from simulator.fleet import Fleet

    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    sim = ["--sim-dir", str(fleet.root)]
    code, _, _ = run(capsys, *sim, "nes", "user", "add", "CORP\\tw-user2", "--password", "pw")
    assert code == 0
    code, out, _ = run(capsys, *sim, "--target", "sim:AAAH-00125", "enroll", "--user",
                       "tw-user2", "--password", "pw", "--json")
    assert code == 0 and json.loads(out)["action"]
    code, _, err = run(capsys, *sim, "nes", "band", "suspend", "AAAH-00125", "--yes")
    assert code != 0 and "NYMI_NES_USER" in err and err.count("\n") == 1
    code, _, _ = run(capsys, *sim, "nes", "user", "add", "CORP\\it-admin", "--password", "pw",
                     "--admin")
    monkeypatch.setenv("NYMI_NES_USER", "CORP\\it-admin")
    monkeypatch.setenv("NYMI_NES_PASSWORD", "pw")
    code, out, _ = run(capsys, *sim, "nes", "band", "suspend", "AAAH-00125", "--yes", "--json")
    assert json.loads(out)["bands"][0]["is_active"] is False
    code, out, _ = run(capsys, *sim, "nes", "audit", "--user", "tw-user2", "--json")
    rows = json.loads(out)
    assert {"create", "update"} <= {row["op"] for row in rows}
    assert any("AAAH-00125" in json.dumps(row) for row in rows)
    code, out, _ = run(capsys, *sim, "nes", "band", "disconnect", "AAAH-00125", "--yes",
                       "--json")
    assert json.loads(out)["bands"] == []
    code, out, _ = run(capsys, *sim, "nes", "policy", "set", "Default Settings Set",
                       "Allow a user to re-enroll / re-register their Nymi Band", "on")
    assert code == 0
    code, out, err = run(capsys, *sim, "nes", "user", "show", "nobody-here")
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1
    code, out, err = run(capsys, *sim, "--target", "sim:AAAH-00125", "enroll", "--user",
                         "tw-user2", "--password", "wrong")
    assert code != 0 and "wrong password" in err and err.count("\n") == 1
