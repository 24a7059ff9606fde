"""Whatever cannot be reached is marked unavailable with the reason; the report is still valid
against its schema, the exit code says what happened, and no traceback escapes."""

from __future__ import annotations

import fcntl
import json
from collections.abc import Iterator
from contextlib import contextmanager

import jsonschema

from hosttools.diagnose.render_json import SCHEMA
from tests.hosttools.diagnose.situations import Site


@contextmanager
def pcscd_lock() -> Iterator[None]:
    """The machine's one pcscd is shared: hold its lock while talking to it."""
    with open("/tmp/nymi-pcscd.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _valid(report: dict[str, object]) -> None:
    jsonschema.validate(report, SCHEMA)


def test_an_unknown_band_is_exit_3_with_the_reason(site: Site) -> None:
    code, report = site.diagnose("ZZZZ-00001")
    _valid(report)
    assert code == 3 and report["findings"] == []
    band = report["sections"]["band"]
    assert not band["available"] and "no simulated band ZZZZ-00001" in band["unavailable"]
    assert report["sections"]["events"]["unavailable"] == band["unavailable"]
    # The server still answers: it has no record of the band.
    assert report["sections"]["server"]["data"]["band"] is None


def test_server_radio_and_reader_unreachable(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    with pcscd_lock():
        code, report = site.diagnose(
            "AAAH-00125", "--scan", "0.5", "--nfc", "No Such Reader",
            "--fido2", "udp:127.0.0.1:1")
    _valid(report)
    sections = report["sections"]
    assert sections["band"]["available"] and sections["server"]["available"]
    for name in ("nfc", "ble", "fido2"):
        assert not sections[name]["available"] and sections[name]["unavailable"], name
    # No such reader, or no PC/SC service at all: either way the reason is named.
    assert any(word in sections["nfc"]["unavailable"] for word in ("No Such Reader", "PC/SC"))
    assert (code, report["findings"]) == (0, [])


def test_server_unreachable_over_http(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    code, out, err = site.run("--nes", "http://127.0.0.1:1/nes", "--target", "sim:AAAH-00125",
                              "diagnose", "--json")
    assert "Traceback" not in err
    report = json.loads(out)
    _valid(report)
    server = report["sections"]["server"]
    assert not server["available"] and server["unavailable"]
    assert server["source"] == "NES http://127.0.0.1:1/nes"
    assert code == report["exit_code"] == 0


def test_text_report_puts_findings_first(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.fail_authentication("AAAH-00125", 4)
    code, out, err = site.run("--target", "sim:AAAH-00125", "diagnose")
    assert code == 1 and "Traceback" not in err
    assert out.index("repeated-no-match") < out.index("Evidence") < out.index("Timeline")
    assert "│ nfc " in out and "unavailable: no NFC reader" in out


def test_bad_input_is_exit_2(site: Site) -> None:
    code, _, err = site.run("diagnose")
    assert code == 2 and "--target" in err
    code, _, err = site.run("--target", "sim:AAAH-00125", "diagnose", "--html",
                            str(site.root / "no" / "such" / "dir" / "r.html"))
    assert code == 2 and err.startswith("error: cannot write")


def test_the_schema_is_printed(site: Site) -> None:
    code, out, _ = site.run("diagnose", "--print-schema")
    assert code == 0 and json.loads(out) == SCHEMA
    jsonschema.Draft202012Validator.check_schema(SCHEMA)


def test_bundle_of_a_band_reached_in_process_says_there_is_no_traffic(site: Site) -> None:
    import zipfile

    site.enroll("AAAH-00125", "tw-user2")
    bundle = site.root / "ticket.zip"
    code, _, err = site.run("--target", "sim:AAAH-00125", "diagnose", "--bundle", str(bundle))
    assert code == 0 and err.strip() == f"Support bundle written to {bundle}"
    with zipfile.ZipFile(bundle) as archive:
        readme = archive.read("README.txt").decode()
        report = json.loads(archive.read("report.json"))
    _valid(report)
    assert "none: no frame crossed a wire" in readme
    assert "nfc     -" in readme and "unavailable: no NFC reader given" in readme
