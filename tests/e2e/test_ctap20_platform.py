"""A CTAP 2.0 platform against the band: python-fido2 0.8.x in its own virtual environment, over
CTAPHID-UDP, with its ``CTAP2``, ``PinProtocolV1`` and ``CTAP1`` (``tests/e2e/ctap20_platform.py``).

Set a PIN, get a token with the legacy getPinToken subcommand, register and authenticate with
``pinAuth``, hmac-secret, credProtect, U2F register / authenticate and a U2F key used through
CTAP2. Where CTAP 2.1 changed 2.0 behaviour on purpose the check pins 2.1: a token's mc/ga
permissions end with its first use, so reusing one token for a second makeCredential is refused
with CTAP2_ERR_PIN_AUTH_INVALID (docs/fido2.md).

The 0.8 environment lives in the user's cache directory (created on first use, never committed).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from simulator.fleet import Fleet
from tests.e2e.conformance import Row, record
from tests.e2e.fido2_device_suite import cache_dir
from tests.e2e.serve_helpers import free_udp_port, serve

FIDO2_LEGACY = "fido2>=0.8,<0.9"
PLATFORM = Path(__file__).with_name("ctap20_platform.py")
FIXTURE = "ctap21-reference"


def legacy_python() -> Path:
    """The interpreter of a virtual environment holding python-fido2 0.8.x (made once)."""
    venv = cache_dir() / "fido2-0.8-venv"
    python = venv / "bin" / "python"
    if not (venv / ".ready").is_file():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True,
                       timeout=300)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        FIDO2_LEGACY], check=True, timeout=600)
        (venv / ".ready").write_text(FIDO2_LEGACY + "\n")
    return python


def _version(python: Path) -> str:
    return subprocess.run(
        [str(python), "-c", "import fido2; print(fido2.__version__)"],
        capture_output=True, text=True, check=True, timeout=60).stdout.strip()


def test_ctap20_platform_over_ctaphid_udp(tmp_path: Path) -> None:
    python = legacy_python()
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band(FIXTURE, "FIDO-00020")
    port, local = free_udp_port(), free_udp_port()
    with serve(fleet.root, "FIDO-00020", "--auto-presence", ports=(port, local)):
        run = subprocess.run([str(python), str(PLATFORM), "127.0.0.1", str(port), str(local)],
                             capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr[-3000:]}"
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    record(Row("CTAP 2.0 platform: python-fido2 `CTAP2` + `PinProtocolV1` + `CTAP1`",
               _version(python), "CTAPHID over UDP", FIXTURE,
               "PIN, legacy token, pinAuth, hmac-secret, credProtect, U2F, U2F key via CTAP2: "
               "pass (a reused token is refused: CTAP 2.1)",
               "tests/e2e/test_ctap20_platform.py"))
