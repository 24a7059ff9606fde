"""``python -m bench --quick``: every suite still runs (a smoke test; no timing is asserted)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent


def test_every_suite_runs_quickly(tmp_path: Path) -> None:
    out = tmp_path / "benchmarks.md"
    result = subprocess.run([sys.executable, "-m", "bench", "--quick", "--out", str(out)],
                            cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    text = out.read_text()
    for title in ("Band model", "FIDO2 authenticator, in-process", "Peers", "CTAPHID-UDP",
                  "PC/SC", "FIDO over BLE", "management protocol", "advertising bands",
                  "served by one process", "under load", "Flows", "Flash opens per flow",
                  "password guessing", "Command-line start-up", "Growth"):
        assert title in text, title
    assert "This suite failed" not in text
