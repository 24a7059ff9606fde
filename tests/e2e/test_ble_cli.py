"""``nymi-sim serve --ble`` in one process, ``nymi-band --target ble:`` in another: the host tools
reach the simulated band over a real BLE host stack and the virtual radio's HCI over TCP."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from simulator.control import CONTROL_FILE
from simulator.fleet import Fleet
from tests.e2e.serve_helpers import EXE_DIR, serve


def _band(sim_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE_DIR / "nymi-band"), "--sim-dir", str(sim_dir), *args],
                          capture_output=True, text=True, timeout=120)


def test_info_status_and_enrollment_over_ble_from_another_process(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    added = _band(fleet.root, "nes", "user", "add", "tw-user2", "--password", "pw")
    assert added.returncode == 0, added.stderr
    with serve(fleet.root, "AAAH-00125", "--ble", "0") as served:
        meta = json.loads((fleet.root / "bands" / "AAAH-00125" / CONTROL_FILE).read_text())
        target = f"ble:{meta['ble']['address']}"
        info = json.loads(_band(fleet.root, "-t", target, "info", "--json").stdout)
        assert info["serial"] == "AAAH-00125" and info["model"] == "Nymi Band 3.0"
        status = json.loads(_band(fleet.root, "-t", target, "status", "--json").stdout)
        assert status["enrollment"] == "unenrolled" and status["screen"] == "No User"
        enrolled = _band(fleet.root, "-t", target, "enroll", "--user", "tw-user2",
                         "--password", "pw", "--json")
        assert enrolled.returncode == 0, enrolled.stderr
        assert json.loads(enrolled.stdout)["serial"] == "AAAH-00125"
        after = json.loads(_band(fleet.root, "-t", target, "status", "--json").stdout)
        assert after["enrollment"] == "enrolled" and after["auth"] == "authenticated"
        moved = served.sim("move", "AAAH-00125", "--distance", "0.05", "--json")
        assert moved.returncode == 0 and json.loads(moved.stdout)["rssi"] == -14
        assert "Traceback" not in enrolled.stderr + moved.stderr
