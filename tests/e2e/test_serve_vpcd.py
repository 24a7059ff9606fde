"""``nymi-sim serve --vpcd --tap SERIAL`` in its own process; pcscd, pyscard and the host tools in
this one — the band reached only through the real PC/SC stack."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

from simulator.fleet import Fleet
from simulator.pcscd import PcscdHandle
from tests.e2e.serve_helpers import EXE_DIR, serve


def _band(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE_DIR / "nymi-band"), *args], capture_output=True, text=True,
                          timeout=60)


def _wait_for(predicate: object, timeout: float = 10.0) -> bool:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


def test_served_band_on_the_reader_through_pcscd(tmp_path: Path, pcscd: PcscdHandle) -> None:
    from smartcard.System import readers

    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band("nymi-band-3.0-secure-nfc", "SNFC-00001")
    nfc_id = fleet_info(fleet, "SNFC-00001")["nfc_id"]
    with serve(fleet.root, "SNFC-00001", "--vpcd", "--tap", "SNFC-00001", "--auto-presence",
               "--slot", "1") as served:
        reader = "Virtual PCD 00 01"
        def on_reader() -> bool:
            listed = json.loads(_band("nfc", "readers", "--json").stdout)
            return any(r["name"] == reader and r["has_card"] for r in listed)

        assert _wait_for(on_reader)
        assert any(str(r) == reader for r in readers())
        read = json.loads(_band("nfc", "read", "--json").stdout)
        assert read["reader"] == reader
        assert read["uid"] == nfc_id
        assert "nymi-band-3.0-secure-nfc" in read["fixtures"]
        info = json.loads(_band("-t", "pcsc:00 01", "fido2", "info", "--json").stdout)
        assert info["aaguid"] == "0acf3011-bc60-f375-fb53-6f05f43154e0"
        # Off the reader: the host sees no band; back on: it answers again.
        assert served.sim("untap", "SNFC-00001").returncode == 0
        assert _wait_for(lambda: _band("-t", "pcsc:00 01", "fido2", "info").returncode != 0)
        gone = _band("-t", "pcsc:00 01", "fido2", "info")
        assert gone.stderr.startswith("error: ") and gone.stderr.count("\n") == 1
        assert served.sim("tap", "SNFC-00001").returncode == 0
        assert _wait_for(lambda: _band("-t", "pcsc:00 01", "fido2", "info").returncode == 0)


def fleet_info(fleet: Fleet, serial: str) -> dict[str, object]:
    with fleet.open_band(serial, save=False) as band:
        return band.info().to_dict()


def test_tap_needs_a_running_band(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    result = subprocess.run([str(EXE_DIR / "nymi-sim"), "tap", "AAAH-00125", "--sim-dir",
                             str(fleet.root)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.startswith("error: band AAAH-00125 is not running")


def test_fido2_key_flow_goes_over_nfc_when_the_band_is_on_a_reader(
        tmp_path: Path, pcscd: PcscdHandle) -> None:
    from hosttools.flows.enroll import enroll
    from hosttools.flows.fido2_keys import create_key, verify_key
    from hosttools.site import open_flow_band
    from simulator.nes import memory_site

    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    site = memory_site()
    site.directory.add_user("CORP\\tw-user2", "pw")
    nes = site.server()
    with open_flow_band("sim:AAAH-00125", sim_dir=fleet.root) as target:
        enroll(target, nes, "tw-user2", "pw", lambda title, detail: None)
    with serve(fleet.root, "AAAH-00125", "--vpcd", "--slot", "1") as served, \
            open_flow_band("sim:AAAH-00125", sim_dir=fleet.root) as target:
        key = create_key(target, nes, "tw-user2", "portal.example.com",
                         lambda title, detail: None)
        signed = verify_key(target, nes, "tw-user2", "portal.example.com",
                            lambda title, detail: None)
        assert signed.credential_id == key.credential_id
    assert served.process.stdout is not None
    # The daemon put the band on its reader for the flow: the key went over NFC.
    assert "AAAH-00125 is on reader 'Virtual PCD 00 01'" in served.process.stdout.read()
    site.close()
