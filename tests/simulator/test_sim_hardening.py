"""What a careless or hostile operator does to a simulated band through ``nymi-sim``.

Each refusal is one line on stderr, a non-zero exit and a fleet directory left byte for byte as it
was; time that is not a finite, sensible number of seconds is refused at every entry; the band
goes on doing between commands what it was doing when the last one ended.
"""

from __future__ import annotations

import asyncio
import json
import math
from pathlib import Path

import pytest

from simulator.cli import main
from simulator.control import ControlServer
from simulator.fleet import Fleet

from .test_sim_cli import tree_digest

SERIAL = "AAAH-00125"
OTHER = "AAAH-00126"
MAX_LINE = 64 * 1024  # the longest control request line a daemon reads


def run(capsys: pytest.CaptureFixture[str], fleet: Path, *args: str) -> tuple[int, str, str]:
    head, dashes, tail = (list(args), [], []) if "--" not in args else (
        list(args[:args.index("--")]), ["--"], list(args[args.index("--") + 1:]))
    code = main([*head, "--sim-dir", str(fleet), *dashes, *tail])
    out, err = capsys.readouterr()
    return code, out, err


def band_status(capsys: pytest.CaptureFixture[str], fleet: Path) -> tuple[int, str, str]:
    """``nymi-band status`` of the band: the read-only command users reach first."""
    from hosttools.cli import main as band_main

    code = band_main(["--target", f"sim:{SERIAL}", "--sim-dir", str(fleet), "status", "--json"])
    out, err = capsys.readouterr()
    return code, out, err


def refused_status(capsys: pytest.CaptureFixture[str], fleet: Path) -> str:
    before = tree_digest(fleet)
    code, out, err = band_status(capsys, fleet)
    assert code != 0, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert tree_digest(fleet) == before, "status changed the fleet directory"
    return lines[0]


def state(capsys: pytest.CaptureFixture[str], fleet: Path, *args: str) -> dict:
    code, out, err = run(capsys, fleet, *args, "--json")
    assert code == 0, err
    return json.loads(out)["state"]


def refused(capsys: pytest.CaptureFixture[str], fleet: Path, *args: str) -> str:
    """Run a command that must be refused: one line, non-zero, nothing changed."""
    before = tree_digest(fleet)
    code, out, err = run(capsys, fleet, *args)
    assert code != 0, out
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    assert tree_digest(fleet) == before, f"{args} changed the fleet directory"
    return lines[0]


@pytest.fixture
def fleet(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    root = tmp_path / "fleet"
    for serial in (SERIAL, OTHER):
        code, _, err = run(capsys, root, "band", "add", "--fixture", "nymi-band-3.0",
                           "--serial", serial)
        assert code == 0, err
    return root


def flash(fleet: Path, serial: str = SERIAL) -> Path:
    return fleet / "bands" / serial / "flash"


# -- reading never writes ---------------------------------------------------------------------


def test_status_with_the_secure_element_gone_writes_nothing(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (flash(fleet) / "se.bin").unlink()
    line = refused_status(capsys, fleet)
    assert "se.bin" in line
    line = refused(capsys, fleet, "status", SERIAL)
    assert "se.bin" in line
    assert not (flash(fleet) / "se.bin").exists()


@pytest.mark.parametrize("size", [0, 3])
def test_status_with_a_truncated_journal_writes_nothing(
        fleet: Path, capsys: pytest.CaptureFixture[str], size: int) -> None:
    journal = flash(fleet) / "journal.log"
    journal.write_bytes(journal.read_bytes()[:size])
    refused_status(capsys, fleet)
    refused(capsys, fleet, "status", SERIAL)
    assert journal.stat().st_size == size


def test_status_and_list_do_not_rewrite_the_world(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    before = tree_digest(fleet)
    state(capsys, fleet, "status", SERIAL)
    assert band_status(capsys, fleet)[0] == 0
    code, _, _ = run(capsys, fleet, "band", "list", "--json")
    assert code == 0
    assert tree_digest(fleet) == before


# -- time -----------------------------------------------------------------------------------------


BAD_SECONDS = ["inf", "-inf", "nan", "NaN", "1e999", "1e300", "-1"]


@pytest.mark.parametrize("seconds", BAD_SECONDS)
def test_wait_refuses_time_that_is_not_a_sensible_number(
        fleet: Path, capsys: pytest.CaptureFixture[str], seconds: str) -> None:
    refused(capsys, fleet, "wait", SERIAL, "--", seconds)


@pytest.mark.parametrize("seconds", BAD_SECONDS)
def test_hold_button_refuses_time_that_is_not_a_sensible_number(
        fleet: Path, capsys: pytest.CaptureFixture[str], seconds: str) -> None:
    run(capsys, fleet, "charge", SERIAL)
    refused(capsys, fleet, "hold-button", SERIAL, "bottom", "--", seconds)


@pytest.mark.parametrize("percent", ["nan", "inf", "1e999"])
def test_battery_refuses_levels_that_are_not_numbers(
        fleet: Path, capsys: pytest.CaptureFixture[str], percent: str) -> None:
    refused(capsys, fleet, "battery", SERIAL, "--", percent)


def test_json_output_is_always_valid_json(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, fleet, "wait", SERIAL, "1e8", "--json")
    assert code == 0
    json.loads(out, parse_constant=lambda c: pytest.fail(f"{c} in --json output"))
    world = (fleet / "bands" / SERIAL / "world.json").read_text()
    json.loads(world, parse_constant=lambda c: pytest.fail(f"{c} in world.json"))


# -- the charger between commands ----------------------------------------------------------------


def test_a_band_on_its_charger_keeps_the_charge_it_gained(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    state(capsys, fleet, "battery", SERIAL, "50")
    state(capsys, fleet, "charge", SERIAL)
    after = state(capsys, fleet, "wait", SERIAL, "600")["battery_pct"]
    assert after == pytest.approx(50 + 600 * 100 / (2 * 3600), abs=0.01)
    assert state(capsys, fleet, "wait", SERIAL, "0")["battery_pct"] == pytest.approx(after)
    assert state(capsys, fleet, "status", SERIAL)["battery_pct"] == pytest.approx(after)


def test_waiting_in_steps_is_waiting_at_once(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A band shut down on a flat battery comes back on the charger however time is cut."""
    for serial in (SERIAL, OTHER):
        assert state(capsys, fleet, "battery", serial, "2")["power"] == "off"
        state(capsys, fleet, "charge", serial)
    for _ in range(4):
        stepped = state(capsys, fleet, "wait", SERIAL, "600")
    at_once = state(capsys, fleet, "wait", OTHER, "2400")
    assert at_once["power"] != "off"  # back on (and asleep: nobody touched it)
    assert stepped["power"] == at_once["power"]
    assert stepped["battery_pct"] == pytest.approx(at_once["battery_pct"])
    assert stepped["band_time"] == pytest.approx(at_once["band_time"])


def test_a_draining_band_drains_the_same_in_steps(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for _ in range(3):
        stepped = state(capsys, fleet, "wait", SERIAL, "3600")
    at_once = state(capsys, fleet, "wait", OTHER, "10800")
    assert stepped["battery_pct"] == pytest.approx(at_once["battery_pct"])
    assert stepped["battery_pct"] == pytest.approx(100 - 3 * 100 / 72, abs=0.01)


# -- damaged fleet files --------------------------------------------------------------------------


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"null", b"\xff\xfe", b'{"time": "x"}',
                                     b'{"time": Infinity}', b'{"time": 1e999}'])
def test_a_damaged_world_file_is_one_line(
        fleet: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    (fleet / "bands" / SERIAL / "world.json").write_bytes(content)
    line = refused(capsys, fleet, "status", SERIAL)
    assert "world.json" in line


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b"\xff", b'{"fixture": 7}',
                                     b'{"serial": "AAAH-00125"}'])
def test_a_damaged_band_file_is_one_line(
        fleet: Path, capsys: pytest.CaptureFixture[str], content: bytes) -> None:
    (fleet / "bands" / SERIAL / "band.json").write_bytes(content)
    refused(capsys, fleet, "status", SERIAL)


def test_a_swapped_fixture_in_the_band_file_is_refused(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    band_json = fleet / "bands" / SERIAL / "band.json"
    band_json.write_text(json.dumps({"serial": SERIAL, "fixture": "nymi-band-3.0-seos"}))
    line = refused(capsys, fleet, "status", SERIAL)
    assert "nymi-band-3.0" in line


def test_a_band_file_of_another_band_is_refused(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("band.json", "world.json"):
        mine = fleet / "bands" / SERIAL / name
        theirs = (fleet / "bands" / OTHER / name).read_bytes()
        good = mine.read_bytes()
        mine.write_bytes(theirs)
        refused(capsys, fleet, "status", SERIAL)
        mine.write_bytes(good)
    state(capsys, fleet, "status", SERIAL)


# -- Delete User Data reaches the event log --------------------------------------------------------


def _enroll(capsys: pytest.CaptureFixture[str], fleet: Path, label: str) -> None:
    from simulator.control import apply_action

    run(capsys, fleet, "wear", SERIAL)
    with Fleet(fleet).open_band(SERIAL) as band:
        apply_action(band, "enter-setup-code", {"code": band.setup_code})
        apply_action(band, "start-capture", {})
        for _ in range(band.fixture.limits.enrollment_touches):
            apply_action(band, "finger", {})
        apply_action(band, "set-label", {"label": label})
        apply_action(band, "apply-policy", {})


def test_delete_user_data_leaves_no_band_label_in_the_event_log(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _enroll(capsys, fleet, "Ann 7")
    events = fleet / "bands" / SERIAL / "events.jsonl"
    assert "ANN 7" in events.read_text()
    assert state(capsys, fleet, "status", SERIAL)["band_label"] == "ANN 7"
    run(capsys, fleet, "remove", SERIAL)
    run(capsys, fleet, "charge", SERIAL)
    code, out, err = run(capsys, fleet, "hold-button", SERIAL, "bottom", "10", "--json")
    assert code == 0 and "USER DATA DELETED" in out, err
    assert "ANN 7" not in events.read_text().upper()
    for line in events.read_text().splitlines():
        json.loads(line)  # the log stays one JSON event per line


# -- the control socket -----------------------------------------------------------------------------


async def _exchange(port: int, payload: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(payload)
    await writer.drain()
    answer = await asyncio.wait_for(reader.readline(), 10)
    writer.close()
    return answer


async def test_the_control_socket_answers_every_line(
        fleet: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = fleet / "bands" / SERIAL
    with Fleet(fleet).open_band(SERIAL, save=False) as band:
        server = ControlServer(band, path)
        port = await server.start()
        try:
            cases = [
                b"\xff\xfe\xfd not utf-8\n",
                b'{"action": "wait", "params": {"seconds": ' + b"1" * (MAX_LINE + 10) + b"}}\n",
                b'{"action": "wait", "params": {"seconds": Infinity}}\n',
                b'{"action": "wait", "params": {"seconds": NaN}}\n',
                b'{"action": "wait", "params": {"seconds": 1e999}}\n',
                b'{"action": "hold", "params": {"button": "bottom", "seconds": Infinity}}\n',
                b'{"action": "battery", "params": {"percent": NaN}}\n',
            ]
            for payload in cases:
                answer = json.loads(await _exchange(port, payload))
                assert answer["ok"] is False and answer["kind"] == "invalid-input", payload[:60]
            # Two requests on one connection after an overlong one: both answered in order.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"x" * (MAX_LINE * 2) + b"\n" + b'{"action": "status"}\n')
            await writer.drain()
            first = json.loads(await asyncio.wait_for(reader.readline(), 10))
            second = json.loads(await asyncio.wait_for(reader.readline(), 10))
            writer.close()
            assert first["ok"] is False and second["ok"] is True
            assert math.isfinite(second["result"]["state"]["band_time"])
        finally:
            await server.close()
