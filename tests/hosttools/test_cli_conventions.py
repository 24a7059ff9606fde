"""``nymi-band`` and ``nymi-sim`` as people expect a command line to behave: start-up that loads
only what a command needs, ``--version``, ``-h``, ``-v``/``--log-level`` with the traffic level,
``--log-file``, completion, the same global options in both, human output without Python reprs,
one encoding for credential IDs, UTC beside band time, every target with every command."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from hosttools.cli import main as band_main
from simulator.cli import main as sim_main
from simulator.fleet import Fleet

EXE = Path(sys.executable).parent
HEAVY = ("bumble", "bleak", "sqlalchemy", "fastapi", "uvicorn", "httpx", "fido2", "smartcard",
         "nfc", "simulator.nes", "simulator.band", "cryptography", "pydantic")
REPR = re.compile(r"\bTrue\b|\bFalse\b|\bNone\b|\{'|\['")


def run(capsys: pytest.CaptureFixture[str], main: object, *args: str) -> tuple[int, str, str]:
    code = main(list(args))  # type: ignore[operator]
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("module", ["hosttools.cli", "simulator.cli"])
def test_help_loads_no_transport_server_or_band_model(module: str) -> None:
    probe = (f"import io, contextlib, sys\nfrom {module} import main\n"
             "with contextlib.redirect_stdout(io.StringIO()):\n    main(['--help'])\n"
             "print('\\n'.join(sorted(sys.modules)))")
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                          timeout=60, check=True)
    loaded = done.stdout.split()
    heavy = [m for m in loaded if m.split(".")[0] in HEAVY or m.startswith(HEAVY)]
    assert heavy == []


@pytest.mark.parametrize("main", [band_main, sim_main], ids=["nymi-band", "nymi-sim"])
def test_version_help_and_common_options(main: object,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, main, "--version")
    assert code == 0
    assert re.search(r"^nymi-(band|sim) \d+\.\d+", out)
    for part in ("nymi-band-3.0", "ctap21-reference", "python-fido2 ", "bleak ", "bumble "):
        assert part in out
    code, short, _ = run(capsys, main, "-h")
    assert code == 0 and "Usage:" in short
    for option in ("--version", "-v, --verbose", "--log-level", "--log-file", "--sim-dir",
                   "--install-completion", "--show-completion", "-h, --help"):
        assert option in short, option
    code, _, _err = run(capsys, main, "--log-level", "loud", "--help")
    assert code == 0  # --help is eager; a bad level is caught when a command runs


def test_show_completion_prints_a_script() -> None:
    done = subprocess.run([str(EXE / "nymi-band"), "--show-completion", "bash"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "complete" in done.stdout


def test_traffic_level_and_log_file(nymi_fleet: Fleet, nymi_ready_band: str, tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "nymi.log"
    base = ["--sim-dir", str(nymi_fleet.root), "--target", f"sim:{nymi_ready_band}"]
    code, out, err = run(capsys, band_main, *base, "--log-level", "traffic", "--log-file",
                         str(log), "fido2", "info", "--json")
    assert code == 0 and json.loads(out)["aaguid"]
    frames = [line for line in log.read_text().splitlines() if " TRAFFIC " in line]
    assert any("SEND cmd 0x10 04" in line for line in frames)  # authenticatorGetInfo
    assert any("RECV 00" in line for line in frames)
    code, _, err = run(capsys, band_main, *base, "-vvv", "info")
    assert code == 0 and "TRAFFIC" not in err  # info reads the band, no frames on this target
    code, _, err = run(capsys, band_main, *base, "--log-level", "loud", "info")
    assert code == 2 and err.startswith("error: --log-level is one of traffic")


def test_sim_dir_is_global_in_nymi_sim_too(tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet"
    code, _, _ = run(capsys, sim_main, "--sim-dir", str(fleet), "band", "add", "--fixture",
                     "nymi-band-3.0", "--serial", "AAAH-00125")
    assert code == 0 and (fleet / "bands" / "AAAH-00125").is_dir()
    code, out, _ = run(capsys, sim_main, "--sim-dir", str(fleet), "wear", "AAAH-00125",
                       "--json")
    assert code == 0 and json.loads(out)["state"]["on_wrist"] is True
    code, out, _ = run(capsys, sim_main, "band", "list", "--sim-dir", str(fleet), "--json")
    assert [row["serial"] for row in json.loads(out)] == ["AAAH-00125"]


def test_human_output_has_no_python_reprs(nymi_fleet: Fleet, nymi_ready_band: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    base = ["--sim-dir", str(nymi_fleet.root), "--target", f"sim:{nymi_ready_band}"]
    for command in (["info"], ["status", "--events", "5"], ["fido2", "info"],
                    ["fido2", "credentials"]):
        code, out, err = run(capsys, band_main, *base, *command)
        assert code == 0, err
        assert not REPR.search(out), f"{command}: {out}"
    code, out, _ = run(capsys, band_main, *base, "status")
    assert re.search(r"on wrist\s+│ yes", out) and "band label" in out and "—" in out


def test_events_show_utc_beside_band_time(nymi_fleet: Fleet, nymi_band: str,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    run(capsys, sim_main, "--sim-dir", str(nymi_fleet.root), "wear", nymi_band)
    base = ["--sim-dir", str(nymi_fleet.root), "--target", f"sim:{nymi_band}"]
    _code, out, _ = run(capsys, band_main, *base, "status", "--events", "2", "--json")
    events = json.loads(out)["events"]
    assert events and all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["utc"])
                          for e in events)
    _code, out, _ = run(capsys, band_main, *base, "status", "--events", "2")
    assert "UTC" in out and "Band time" in out and events[-1]["utc"][:19] in out


def test_one_encoding_for_credential_ids(nymi_fleet: Fleet, nymi_ready_band: str,
                                         nymi_nes: object,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--sim-dir", str(nymi_fleet.root)]
    band = [*sim, "--target", f"sim:{nymi_ready_band}"]
    # The fixture's band is enrolled locally; record it for tw-user2 through a re-enrollment.
    code, _, err = run(capsys, band_main, *band, "reenroll", "-u", "tw-user2", "--password",
                       "demo-password")
    assert code == 0, err
    code, out, err = run(capsys, band_main, *band, "fido2", "create-key", "-u", "tw-user2",
                         "--password", "demo-password", "--rp", "portal.example.com", "--json")
    assert code == 0, err
    credential_id = json.loads(out)["credential_id"]
    assert re.fullmatch(r"[A-Za-z0-9_-]+", credential_id)
    code, listed, _ = run(capsys, band_main, *sim, "fido2", "list")
    code, audit, _ = run(capsys, band_main, *sim, "nes", "audit", "--table", "fido2_keys",
                         "--json")
    code, on_band, _ = run(capsys, band_main, *band, "fido2", "credentials", "--json")
    assert credential_id in listed
    assert credential_id in {row["key"] for row in json.loads(audit)}
    assert credential_id in {row["credential_id"] for row in json.loads(on_band)["credentials"]}


def test_site_created_from_the_command_line(tmp_path: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    sim = ["--sim-dir", str(tmp_path / "fleet")]
    code, out, _ = run(capsys, band_main, *sim, "nes", "site", "create", "--layout", "it-ot",
                       "--json")
    assert code == 0 and json.loads(out)["servers"] == ["enrollment", "registration"]
    code, _, err = run(capsys, band_main, *sim, "nes", "site", "create")
    assert code == 2 and "already has a it-ot NES site" in err
    code, out, _ = run(capsys, band_main, *sim, "--nes", "registration", "nes", "user", "add",
                       "CORP\\ot-user", "--password", "pw", "--json")
    assert code == 0 and json.loads(out)["account"] == "CORP\\ot-user"
    code, out, _ = run(capsys, band_main, *sim, "nes", "site", "show", "--json")
    assert json.loads(out)["layout"] == "it-ot"
    code, _, err = run(capsys, band_main, "--sim-dir", str(tmp_path / "none"), "nes", "site",
                       "show")
    assert code == 2 and "nes site create" in err and not (tmp_path / "none").exists()


def serve_ready(fleet: Path, *options: str) -> tuple[subprocess.Popen[str], dict[str, Any]]:
    """``nymi-sim serve OPTIONS`` and the JSON ready line it prints once everything listens."""
    process = subprocess.Popen(
        [str(EXE / "nymi-sim"), "--sim-dir", str(fleet), "serve", *options],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 60
    assert process.stdout is not None
    while time.monotonic() < deadline:
        line = process.stdout.readline()
        if not line:
            break
        if line.startswith("{"):
            return process, json.loads(line)
    stop(process)
    raise AssertionError(process.stderr.read() if process.stderr else "no ready line")


def stop(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def test_serve_ble_on_a_free_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet"
    assert sim_main(["--sim-dir", str(fleet), "band", "add", "--fixture", "nymi-band-3.0",
                     "--serial", "AAAH-00125"]) == 0
    capsys.readouterr()
    process, ready = serve_ready(fleet, "--ble", "0")
    try:
        ble = ready["ble"]
        assert ble["port"] > 0 and ble["hci"] == f"tcp-client:127.0.0.1:{ble['port']}"
        code, out, err = run(capsys, band_main, "--sim-dir", str(fleet), "--target",
                             ble["target"], "info", "--json")
        assert code == 0, err
        assert json.loads(out)["serial"] == "AAAH-00125"
    finally:
        stop(process)


def test_serve_on_free_ports_prints_a_ready_line(tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    fleet = tmp_path / "fleet"
    assert sim_main(["--sim-dir", str(fleet), "band", "add", "--fixture", "ctap21-reference",
                     "--serial", "REFB-00001"]) == 0
    capsys.readouterr()
    process, ready = serve_ready(fleet, "--ctaphid-udp", "--port", "0", "--auto-presence")
    try:
        assert ready["event"] == "ready" and ready["serial"] == "REFB-00001"
        udp = ready["ctaphid_udp"]
        assert udp["port"] > 0 and udp["reply_port"] > 0 and udp["port"] != 8111
        assert udp["target"] == f"udp:127.0.0.1:{udp['port']}/{udp['reply_port']}"
        code, out, err = run(capsys, band_main, "--target", udp["target"], "fido2", "info",
                             "--json")
        assert code == 0, err
        assert "FIDO_2_1" in json.loads(out)["versions"]
        code, out, err = run(capsys, band_main, "--target", udp["target"], "status")
        assert code == 0 and "answers" in out and "FIDO2 authenticator" in out
    finally:
        stop(process)


def test_first_reader_holding_a_band(nymi_pcsc_device: object,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    """``pcsc:`` alone is the first reader holding a band (here the vpcd reader)."""
    for command in (["info"], ["status"], ["fido2", "info"]):
        code, out, err = run(capsys, band_main, "--target", "pcsc:", *command, "--json")
        assert code == 0, err
        assert json.loads(out)["aaguid"] == "0acf3011-bc60-f375-fb53-6f05f43154e0"


DOC_ROOTS = ("docs", "README.md", "hosttools", "simulator")


def test_nothing_cites_a_document_users_do_not_have(
        capsys: pytest.CaptureFixture[str]) -> None:
    root = Path(__file__).resolve().parents[2]
    offending = []
    for name in ("docs", "README.md"):
        paths = [root / name] if name.endswith(".md") else sorted((root / name).rglob("*.md"))
        for path in paths:
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if re.search(r"DOMAIN(\.md| \d)", line):
                    offending.append(f"{path.relative_to(root)}:{number}")
    assert offending == []
    for main, commands in ((band_main, ["demo", "enroll", "reenroll", "nes", "status"]),
                           (sim_main, ["serve", "nes"])):
        for command in commands:
            run(capsys, main, command, "--help")
            out, _ = capsys.readouterr()
            assert "DOMAIN" not in out
