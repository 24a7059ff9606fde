"""Every command against every broken environment a user can cause: one ``error:`` line on
stderr (what failed, why, what to do), a non-zero exit, no traceback, nothing written.

Environments that live in the process (a database that does not answer, a band without a PIN,
wrong credentials) run ``main()`` in-process; those that live in the OS libraries (no BlueZ, no
pcscd) run the installed command as a subprocess with the library pointed at nothing.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from hosttools.cli import main
from simulator.fleet import Fleet

EXE = Path(sys.executable).parent
SERIAL = "AAAH-00125"
PIN_CMDS = [["fido2", "credentials", "--pin", "1234"]]
FLOWS = [["enroll", "-u", "tw-user2", "--password", "pw"],
         ["reenroll", "-u", "tw-user2", "--password", "pw"],
         ["delete-user-data"],
         ["fido2", "create-key", "-u", "tw-user2", "--password", "pw", "--rp", "example.com"]]
BAND_CMDS = [["info"], ["status"], ["status", "--events", "3"], ["fido2", "info"],
             ["fido2", "credentials"]]
NES_CMDS = [["nes", "user", "show", "x"], ["nes", "user", "add", "x", "--password", "pw"],
            ["nes", "policy", "show"], ["nes", "band", "show", SERIAL], ["nes", "audit"],
            ["nes", "eam", "show", "x"], ["fido2", "list"],
            ["enroll", "-u", "x", "--password", "pw"]]


def assert_one_error_line(code: int, err: str) -> None:
    assert code != 0, err
    assert "Traceback" not in err, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "unexpected failure" not in err, err


def run_in_process(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(*args: str, env: dict[str, str]) -> tuple[int, str, str]:
    done = subprocess.run([str(EXE / "nymi-band"), *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env, "NO_COLOR": "1"},
                          stdin=subprocess.DEVNULL)
    return done.returncode, done.stdout, done.stderr


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", SERIAL)
    return fleet


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")
                  if ".lock" not in p.name)


# -- the database is unreachable ---------------------------------------------------------------

@pytest.mark.parametrize("command", NES_CMDS, ids=" ".join)
def test_database_unreachable(command: list[str], fleet: Fleet,
                              capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(fleet.root)
    code, _, err = run_in_process(capsys, "--sim-dir", str(fleet.root), "--target",
                                  f"sim:{SERIAL}", "--nes",
                                  "postgresql://u:secret@127.0.0.1:1/db", *command)
    assert_one_error_line(code, err)
    assert "database" in err and "secret" not in err
    assert tree(fleet.root) == before


# -- a site that is not there: nothing is written ----------------------------------------------

@pytest.mark.parametrize("command", [*NES_CMDS[:6], FLOWS[0]], ids=" ".join)
def test_missing_it_ot_server_writes_nothing(command: list[str], fleet: Fleet,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(fleet.root)
    code, _, err = run_in_process(capsys, "--sim-dir", str(fleet.root), "--target",
                                  f"sim:{SERIAL}", "--nes", "enrollment", *command)
    assert_one_error_line(code, err)
    assert "nes site create --layout it-ot" in err
    assert tree(fleet.root) == before


@pytest.mark.parametrize("command", [["nes", "user", "show", "x"], ["nes", "eam", "show", "x"],
                                     ["nes", "band", "show", SERIAL]], ids=" ".join)
def test_a_failing_command_leaves_no_site(command: list[str], fleet: Fleet,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    before = tree(fleet.root)
    code, _, err = run_in_process(capsys, "--sim-dir", str(fleet.root), *command)
    assert_one_error_line(code, err)
    assert tree(fleet.root) == before


# -- a band without PIN support; wrong credentials ---------------------------------------------

@pytest.mark.parametrize("command", PIN_CMDS, ids=" ".join)
def test_band_without_pin_support(command: list[str], fleet: Fleet,
                                  capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_in_process(capsys, "--sim-dir", str(fleet.root), "--target",
                                  f"sim:{SERIAL}", *command)
    assert_one_error_line(code, err)
    assert "no PIN" in err and "without --pin" in err


def test_wrong_password_and_unknown_band(fleet: Fleet,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--sim-dir", str(fleet.root)]
    assert run_in_process(capsys, *sim, "nes", "user", "add", "CORP\\tw-user2",
                          "--password", "pw")[0] == 0
    from simulator.serve import make_ready

    with fleet.open_band(SERIAL) as band:  # worn and enrolled, so the key flow gets to sign-in
        make_ready(band)
    for command in FLOWS[:2] + FLOWS[3:]:
        wrong = [a if a != "pw" else "wrong" for a in command]
        code, out, err = run_in_process(capsys, *sim, "--target", f"sim:{SERIAL}", *wrong)
        assert_one_error_line(code, err)
        assert "wrong password" in err
    for command in FLOWS:
        code, out, err = run_in_process(capsys, *sim, "--target", "sim:ZZZZ-00009", *command)
        assert_one_error_line(code, err)
        assert "no simulated band ZZZZ-00009" in err
        assert "Signed in" not in out  # the band is checked before anyone signs in


def test_a_key_flow_checks_the_band_before_signing_in(
        fleet: Fleet, capsys: pytest.CaptureFixture[str]) -> None:
    from simulator.nes import open_site

    sim = ["--sim-dir", str(fleet.root)]
    with open_site(fleet.root) as site:  # in the directory, not yet known to the NES
        site.directory.add_user("CORP\\tw-user2", "pw")
    audit_before = run_in_process(capsys, *sim, "nes", "audit", "--json")[1]
    for command in (FLOWS[3], ["fido2", "verify", "-u", "tw-user2", "--password", "pw",
                               "--rp", "example.com"]):
        code, _, err = run_in_process(capsys, *sim, "--target", f"sim:{SERIAL}", *command)
        assert_one_error_line(code, err)
        assert "not enrolled" in err
    assert run_in_process(capsys, *sim, "nes", "audit", "--json")[1] == audit_before


# -- a command that makes no sense for the target ----------------------------------------------

@pytest.mark.parametrize("command", FLOWS, ids=" ".join)
@pytest.mark.parametrize("target", ["udp:127.0.0.1:9/9", "pcsc:", "nfcpy:usb"])
def test_fido2_only_target_names_what_works(command: list[str], target: str, fleet: Fleet,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_in_process(capsys, "--sim-dir", str(fleet.root), "--target", target,
                                  *command)
    assert_one_error_line(code, err)
    assert "fido2 info" in err


# -- no BlueZ, no pcscd (the OS libraries pointed at nothing) ----------------------------------

NO_BLUEZ = {"DBUS_SYSTEM_BUS_ADDRESS": "unix:path=/nonexistent/system_bus_socket"}
NO_PCSCD = {"PCSCLITE_CSOCK_NAME": "/nonexistent/pcscd.comm"}


@pytest.mark.parametrize("command", [*BAND_CMDS, ["scan", "--seconds", "0.5"], ["watch", "--seconds", "0.5"], *FLOWS[2:3]],
                         ids=" ".join)
def test_no_bluez(command: list[str], tmp_path: Path) -> None:
    code, _, err = run_subprocess("--sim-dir", str(tmp_path), "--target",
                                  "ble:AA:BB:CC:DD:EE:FF", *command, env=NO_BLUEZ)
    assert_one_error_line(code, err)
    assert "--hci" in err


@pytest.mark.parametrize("command", BAND_CMDS[:2] + BAND_CMDS[3:] + [
    ["nfc", "readers"], ["nfc", "read", "--timeout", "0.2"]], ids=" ".join)
def test_no_pcscd(command: list[str], tmp_path: Path) -> None:
    code, _, err = run_subprocess("--sim-dir", str(tmp_path), "--target", "pcsc:", *command,
                                  env=NO_PCSCD)
    assert_one_error_line(code, err)
    assert "pcscd" in err


@pytest.fixture
def running_pcscd() -> Iterator[None]:
    """The one system pcscd with its vpcd reader, holding no band (run under the pcscd lock)."""
    from nymi_device.errors import BandUnreachableError
    from simulator.pcscd import ensure_pcscd

    try:
        handle = ensure_pcscd()
    except BandUnreachableError as exc:
        pytest.skip(f"no PC/SC stack with the vpcd reader: {exc}")
    try:
        yield
    finally:
        handle.stop()


@pytest.mark.parametrize("command", [["info"], ["status"], ["fido2", "info"],
                                     ["nfc", "read", "--timeout", "0.2"]], ids=" ".join)
@pytest.mark.parametrize("target", ["pcsc:No Such Reader 4711", "pcsc:"])
def test_no_such_reader_or_no_band(command: list[str], target: str, tmp_path: Path,
                                   running_pcscd: None) -> None:
    code, _, err = run_subprocess("--sim-dir", str(tmp_path), "--target", target, *command,
                                  env={})
    assert_one_error_line(code, err)
    assert "reader" in err
