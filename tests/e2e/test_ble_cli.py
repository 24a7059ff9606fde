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
        scanned = json.loads(_band(fleet.root, "--hci", meta["ble"]["moniker"], "scan",
                                   "--seconds", "1", "--json").stdout)
        assert [(b["serial"], b["address"]) for b in scanned] == [
            ("AAAH-00125", meta["ble"]["address"])]
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


def test_fido2_over_ble_and_delete_user_data_against_the_daemon(tmp_path: Path) -> None:
    from fido2.client import DefaultClientDataCollector, Fido2Client
    from fido2.server import Fido2Server
    from fido2.webauthn import (
        PublicKeyCredentialRpEntity,
        PublicKeyCredentialUserEntity,
        UserVerificationRequirement,
    )

    from nymi_device.fido import open_ctap_device
    from simulator.serve import make_ready

    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band("ctap21-reference", "REFB-00001")
    with fleet.open_band("REFB-00001") as band:
        make_ready(band)
    with serve(fleet.root, "REFB-00001", "--ble", "0", "--auto-presence") as served:
        meta = json.loads((fleet.root / "bands" / "REFB-00001" / CONTROL_FILE).read_text())
        address, moniker = meta["ble"]["address"], meta["ble"]["moniker"]
        info = json.loads(_band(fleet.root, "-t", f"ble:{address}", "--hci", moniker,
                                "fido2", "info", "--json").stdout)
        assert "FIDO_2_1" in info["versions"]
        # python-fido2's own client and server over CtapBleDevice, to the other process.
        device = open_ctap_device(f"ble:{address}", hci=moniker, timeout=20)
        try:
            server = Fido2Server(PublicKeyCredentialRpEntity(id="example.com", name="Example"))
            client = Fido2Client(device, DefaultClientDataCollector("https://example.com"))
            options, state = server.register_begin(
                PublicKeyCredentialUserEntity(id=b"u1", name="tw-user2"),
                user_verification=UserVerificationRequirement.DISCOURAGED)
            auth_data = server.register_complete(state, client.make_credential(
                options.public_key))
            options, state = server.authenticate_begin(
                [auth_data.credential_data],
                user_verification=UserVerificationRequirement.DISCOURAGED)
            response = client.get_assertion(options.public_key).get_response(0)
            server.authenticate_complete(state, [auth_data.credential_data], response)
        finally:
            device.close()
        # Delete User Data over BLE: physical steps through the daemon, state over the protocol.
        assert served.sim("remove", "REFB-00001").returncode == 0
        assert served.sim("charge", "REFB-00001").returncode == 0
        wiped = _band(fleet.root, "-t", f"ble:{address}", "delete-user-data", "--json")
        assert wiped.returncode == 0, wiped.stderr
        assert json.loads(wiped.stdout)["screens"] == ["Delete User Data", "USER DATA DELETED"]
