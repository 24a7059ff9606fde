"""A step the band never confirms ends the flow: non-zero exit, the step named, nothing recorded.

Nothing is reported done that the band did not confirm: an unreachable band is never a success,
a person who does not do what the console asks fails the flow at that step, and the enterprise
server is left as it was. Prompts go to stderr, so ``--json`` output stays parseable.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from hosttools.flows.delete_user_data import delete_user_data
from hosttools.flows.enroll import enroll
from hosttools.site import open_flow_band, served_over_ble
from nymi_device.errors import StepNotConfirmedError
from nymi_device.protocol.operator import PhysicalStep
from simulator.fleet import Fleet
from simulator.nes import DEFAULT_GROUP_POLICY, open_site
from tests.e2e.serve_helpers import serve

EXE = Path(sys.executable).parent / "nymi-band"
PASSWORD = "Passw0rd!"
ANY = "Allow a user to re-enroll any active Nymi Band"


def nymi_band(*args: str, sim_dir: Path, stdin: str | None = None
              ) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), "--sim-dir", str(sim_dir), *args], input=stdin,
                          stdin=None if stdin is not None else subprocess.DEVNULL,
                          capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1", "NYMI_PASSWORD": PASSWORD})


@pytest.mark.parametrize("as_json", [False, True])
def test_an_unreachable_band_is_never_a_success(tmp_path: Path, as_json: bool) -> None:
    args = ["--target", "ble:AA:BB:CC:DD:EE:FF", "--hci", "tcp-client:127.0.0.1:1",
            "delete-user-data", *(["--json"] if as_json else [])]
    result = nymi_band(*args, sim_dir=tmp_path, stdin="\n\n\n")
    assert result.returncode != 0
    assert result.stdout == ""  # nothing reported, in particular no "User data deleted"
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1
    assert "Traceback" not in result.stderr


def test_the_console_operator_fails_the_step_the_band_does_not_confirm(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    with open_site(fleet.root) as site, open_flow_band(
            "sim:AAAH-00125", sim_dir=fleet.root, operator="console", prompts=io.StringIO(),
            answers=io.StringIO(""), timeout=0.2) as band:
        site.directory.add_user("CORP\\tw-user2", PASSWORD)
        with pytest.raises(StepNotConfirmedError) as failed:
            enroll(band, site.server(), "tw-user2", PASSWORD, lambda t, d: None)
        assert site.server().user("CORP\\tw-user2").bands == ()  # nothing recorded
    assert failed.value.step == PhysicalStep.WEAR.value
    assert "did not confirm the step 'wear the band' within 0.2 s" in str(failed.value)


def test_a_delete_user_data_nobody_performs_is_not_reported(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    prompts = io.StringIO()
    with open_flow_band("sim:AAAH-00125", sim_dir=fleet.root, operator="console",
                        prompts=prompts, answers=io.StringIO(""), timeout=0.2) as band:
        with pytest.raises(StepNotConfirmedError, match="put the band on its charger"):
            delete_user_data(band, lambda t, d: None, prepare=True)
    assert "> Put the band on its charger. (waiting for the band)" in prompts.getvalue()


def test_a_band_never_taken_off_fails_the_reenrollment_and_records_nothing(
        tmp_path: Path) -> None:
    """Over BLE, a person at the console who does not take the band off: the re-enrollment
    stops at that step, exits non-zero naming it, and the server is unchanged."""
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    with open_site(fleet.root) as site:
        for user in ("CORP\\tw-user1", "CORP\\tw-user2"):
            site.directory.add_user(user, PASSWORD)
        site.server().update_policy(DEFAULT_GROUP_POLICY, {ANY: True})
    with serve(fleet.root, "AAAH-00125", "--ble", "0"):
        (served,) = served_over_ble(fleet.root)
        target = f"ble:{served.address}"
        enrolled = nymi_band("--target", target, "enroll", "--user", "tw-user1", "--json",
                             sim_dir=fleet.root)
        assert enrolled.returncode == 0, enrolled.stderr
        assert json.loads(enrolled.stdout)["account"] == "CORP\\tw-user1"
        result = nymi_band("--target", target, "--operator", "console", "--step-timeout", "1",
                           "reenroll", "--user", "tw-user2", "--json", sim_dir=fleet.root)
        assert result.returncode == 1
        assert result.stdout == ""
        assert "> Take the band off your wrist. (waiting for the band)" in result.stderr
        error = result.stderr.strip().splitlines()[-1]
        assert error == ("error: the band did not confirm the step 'take the band off the "
                         "wrist' within 1 s")
        state = served_status(served.control_port)
        assert state["enrollment"] == "enrolled" and state["on_wrist"]
    with open_site(fleet.root) as site:
        nes = site.server()
        assert [b.serial for b in nes.user("CORP\\tw-user1").bands] == ["AAAH-00125"]
        assert nes.user("CORP\\tw-user2").bands == ()


def served_status(port: int) -> dict[str, object]:
    from simulator.control import send_action

    state = send_action(port, "status")["state"]
    assert isinstance(state, dict)
    return state


def test_a_power_cycle_reaches_the_authenticator_of_a_band_a_flow_holds_once(
        tmp_path: Path) -> None:
    """The authenticator a flow wires to its band follows the band's power through its own
    hooks: a power cycle of the band runs once, with no loop between band and authenticator."""
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    with open_flow_band("sim:AAAH-00125", sim_dir=fleet.root) as band:
        band.band.fido2_device().close()  # wires the authenticator to the band
        report = band.band.band.backend.control("power-cycle")  # type: ignore[attr-defined]
    assert report["state"]["power"] == "awake" and report["state"]["auth"] == "deauthenticated"
