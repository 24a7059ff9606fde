"""The whole report against a served band: band through its daemon, FIDO2 over CTAPHID/UDP, RSSI
over the virtual radio, the embedded NES; the HTML page opened in headless Chromium, the bundle
unpacked, the JSON validated against its schema."""

from __future__ import annotations

import json
import os
import shutil
import zipfile
from pathlib import Path

import jsonschema
import pytest

from hosttools.diagnose.render_json import SCHEMA
from simulator.control import CONTROL_FILE
from tests.e2e.serve_helpers import serve
from tests.hosttools.diagnose.situations import Site, only_finding

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]
#: Set to a directory to keep the screenshot there (docs/images when the docs are refreshed).
SCREENSHOT_DIR = os.environ.get("NYMI_DIAGNOSE_SCREENSHOT_DIR")


def _moved_without_key(site: Site) -> None:
    site.self_service()
    site.enroll("AAAH-00125", "tw-user2")
    site.create_key("AAAH-00125", "tw-user2")
    site.enroll("ACAK-00056", "tw-user1")
    site.reenroll("ACAK-00056", "tw-user2")


def _screenshot(html: Path, shot: Path) -> list[str]:
    sync_api = pytest.importorskip("playwright.sync_api")
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1100, "height": 1250})
            page.goto(html.as_uri())
            findings = page.locator(".finding")
            sync_api.expect(findings.first).to_be_visible()
            sync_api.expect(page.locator("#rssi-plot")).to_be_visible()
            titles = [t.strip() for t in findings.locator("h3").all_inner_texts()]
            page.screenshot(path=str(shot))  # the first screen: findings, evidence, RSSI
        finally:
            browser.close()
    return titles


def test_full_report_of_a_served_band(site: Site, tmp_path: Path) -> None:
    _moved_without_key(site)
    html, bundle = tmp_path / "report.html", tmp_path / "ticket.zip"
    with serve(site.root, "ACAK-00056", "--ble", "0"):
        meta = json.loads((site.root / "bands" / "ACAK-00056" / CONTROL_FILE).read_text())
        code, out, err = site.run("--target", "sim:ACAK-00056", "--hci", meta["ble"]["moniker"],
                                  "diagnose", "--json", "--scan", "2", "--html", str(html),
                                  "--bundle", str(bundle))
    assert "Traceback" not in err
    report = json.loads(out)
    jsonschema.validate(report, SCHEMA)
    assert code == 1
    finding = only_finding(report, "fido2-key-missing")
    sections = report["sections"]
    assert all(sections[name]["available"] for name in ("band", "events", "fido2", "ble",
                                                        "server"))
    assert sections["nfc"]["unavailable"] == "no NFC reader given (--nfc READER)"
    ble = sections["ble"]["data"]
    assert ble["samples"] and all(-127 <= s["rssi"] <= 20 for s in ble["samples"])
    assert sections["fido2"]["source"].startswith("sim:ACAK-00056")

    with zipfile.ZipFile(bundle) as archive:
        names = set(archive.namelist())
        assert {"report.json", "report.html", "report.txt", "README.txt",
                "ctap-frames.txt"} <= names
        assert json.loads(archive.read("report.json"))["findings"][0]["rule"] == \
            "fido2-key-missing"
        assert "SEND" in archive.read("ctap-frames.txt").decode()

    page = html.read_text()
    assert "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in page
    shot = tmp_path / "diagnose-report.png"
    titles = _screenshot(html, shot)
    assert titles == [f"[error] {finding['title']} (fido2-key-missing)"]
    assert shot.stat().st_size > 10_000
    if SCREENSHOT_DIR:
        shutil.copy(shot, Path(SCREENSHOT_DIR) / "diagnose-report.png")
