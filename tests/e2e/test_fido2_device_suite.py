"""python-fido2 2.2.1's own device suite, unchanged, against a served ``ctap21-reference`` band
over pcscd + vpcd (the way a new user would judge the authenticator).

The suite is destructive and needs the authenticator in factory state: a fresh band in a fresh
fleet. It must pass completely; the only skips allowed are its feature gates (an algorithm,
extension or command the fixture does not have). The result goes into the conformance table
of ``docs/fido2.md``.
"""

from __future__ import annotations

import re
from pathlib import Path

from simulator.pcscd import PcscdHandle
from tests.e2e.conformance import Row, record
from tests.e2e.fido2_device_suite import (
    DEFAULT_FIXTURE,
    FIDO2_VERSION,
    fetch_suite,
    run_suite,
    served_band,
)

#: Why the suite may skip a test: the fixture lacks the feature (nothing else).
FEATURE_GATE = re.compile(
    r"not supported|Device is not a CtapHidDevice|Requires factory reset")


def test_python_fido2_device_suite_over_nfc(tmp_path: Path, pcscd: PcscdHandle) -> None:
    suite = fetch_suite(FIDO2_VERSION)
    with served_band(tmp_path / "fleet", DEFAULT_FIXTURE) as band_dir:
        result = run_suite(suite, band_dir, extra=("-rs",), timeout=900)
    tail = "\n".join(result.output.splitlines()[-60:])
    assert result.taps >= 1, f"the suite never asked for the band:\n{tail}"
    assert result.returncode == 0, f"python-fido2 device suite: {result.summary}\n{tail}"
    assert result.count("failed") == 0 and result.count("errors") == 0, result.summary
    assert result.count("passed") > 0, result.summary
    skips = [line for line in result.output.splitlines() if line.startswith("SKIPPED")]
    not_gated = [line for line in skips if not FEATURE_GATE.search(line)]
    assert not not_gated, "skips that are not feature gates:\n" + "\n".join(not_gated)
    record(Row("python-fido2 `tests/device`", FIDO2_VERSION, "NFC (pcscd + vpcd)",
               DEFAULT_FIXTURE,
               f"{result.count('passed')} passed, {result.count('skipped')} skipped "
               "(feature gates), 0 failed",
               "tests/e2e/test_fido2_device_suite.py"))
    print(f"python-fido2 {FIDO2_VERSION} tests/device: {result.summary}")


def test_summary_line_is_read() -> None:
    from tests.e2e.fido2_device_suite import parse_counts

    assert parse_counts("x\n52 passed, 314 skipped in 6.68s\n") == {"passed": 52, "skipped": 314}
    assert parse_counts("== 1 failed, 2 passed, 3 errors in 1.0s ==") == {
        "failed": 1, "passed": 2, "errors": 3}
    assert parse_counts("no summary") == {}
