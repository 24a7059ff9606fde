"""python-fido2's own device suite (``tests/device`` of its source distribution), unchanged,
against a served band over pcscd + vpcd.

The suite is fetched once with ``pip download fido2==VERSION --no-binary :all: --no-deps`` into a
cache directory and unpacked there. A fleet with one band of the fixture is created, served with
``nymi-sim serve --vpcd --auto-presence`` *off* the reader, and the suite runs as a subprocess::

    pytest tests/device --reader "Virtual PCD 00 00" -p no:cacheprovider

The suite first wants no card on the reader ("Remove the Authenticator from the NFC reader"),
then waits for one ("Place the Authenticator on the NFC reader"): this driver answers that prompt
by tapping the band. Every later reconnect is a card power-off / power-on that pcscd does itself.

Run it by hand (the pcscd lock keeps other users of the shared vpcd slot out)::

    flock /tmp/nymi-pcscd.lock .venv/bin/python -m tests.e2e.fido2_device_suite

It prints the suite's output and a summary line, and exits with the suite's status.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from simulator.control import daemon_port, send_action
from simulator.fleet import Fleet
from tests.e2e.serve_helpers import serve

EXE_DIR = Path(sys.executable).parent
FIDO2_VERSION = "2.2.1"
DEFAULT_FIXTURE = "ctap21-reference"
DEFAULT_SERIAL = "FIDO-00001"
PLACE_PROMPT = "Place the Authenticator on the NFC reader"
REMOVE_PROMPT = "Remove the Authenticator from the NFC reader"
_SUMMARY = re.compile(r"(\d+) (passed|failed|skipped|errors?|xfailed|xpassed|deselected)")


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "nymi-band-stack"


def fetch_suite(version: str = FIDO2_VERSION, cache: Path | None = None) -> Path:
    """The unpacked source distribution of python-fido2 ``version`` (downloaded once)."""
    cache = cache or cache_dir()
    root = cache / f"fido2-{version}"
    if (root / "tests" / "device" / "conftest.py").is_file():
        return root
    cache.mkdir(parents=True, exist_ok=True)
    sdist = cache / f"fido2-{version}.tar.gz"
    if not sdist.is_file():
        subprocess.run(
            [sys.executable, "-m", "pip", "download", f"fido2=={version}", "--no-binary", ":all:",
             "--no-deps", "--disable-pip-version-check", "-q", "-d", str(cache)],
            check=True, timeout=300)
    with tempfile.TemporaryDirectory(dir=cache) as scratch, tarfile.open(sdist) as archive:
        archive.extractall(scratch, filter="data")
        Path(scratch, f"fido2-{version}").rename(root)
    return root


@dataclass
class SuiteResult:
    """What the suite reported."""

    returncode: int
    output: str
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    taps: int = 0

    def count(self, outcome: str) -> int:
        return self.counts.get(outcome, 0)

    @property
    def summary(self) -> str:
        parts = ", ".join(f"{n} {k}" for k, n in sorted(self.counts.items()))
        return f"{parts or 'nothing ran'} in {self.seconds:.1f} s (exit {self.returncode})"


def parse_counts(output: str) -> dict[str, int]:
    """The counts of pytest's final summary line."""
    lines = [line for line in output.splitlines() if " in " in line and _SUMMARY.search(line)]
    counts: dict[str, int] = {}
    if lines:
        for number, outcome in _SUMMARY.findall(lines[-1]):
            counts["errors" if outcome.startswith("error") else outcome] = int(number)
    return counts


@contextmanager
def served_band(sim_dir: Path, fixture: str = DEFAULT_FIXTURE, serial: str = DEFAULT_SERIAL,
                slot: int = 0) -> Iterator[Path]:
    """A factory-state band of ``fixture`` served for vpcd ``slot``, not yet on the reader."""
    fleet = Fleet(sim_dir)
    fleet.add_band(fixture, serial)
    with serve(sim_dir, serial, "--vpcd", "--slot", str(slot), "--auto-presence",
               ctaphid=False):
        yield fleet.band_dir(serial)


def run_suite(suite_root: Path, band_dir: Path, *, slot: int = 0, timeout: float = 1800.0,
              echo: bool = False, extra: tuple[str, ...] = ()) -> SuiteResult:
    """Run ``tests/device`` against the served band, tapping it when the suite asks."""
    port = daemon_port(band_dir)
    if port is None:
        raise RuntimeError(f"the band in {band_dir} is not running")
    reader = f"Virtual PCD 00 {slot:02d}"
    command = [sys.executable, "-m", "pytest", "tests/device", "--reader", reader,
               "-p", "no:cacheprovider", "-q", "-rfE", *extra]
    started = time.monotonic()
    process = subprocess.Popen(command, cwd=suite_root, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True,
                               env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"})
    assert process.stdout is not None
    lines: list[str] = []
    taps = 0
    timer = threading.Timer(timeout, process.kill)
    timer.start()
    try:
        for line in process.stdout:
            lines.append(line)
            if echo:
                sys.stdout.write(line)
                sys.stdout.flush()
            if PLACE_PROMPT in line:
                send_action(port, "tap", {"slot": slot})
                taps += 1
            elif REMOVE_PROMPT in line:
                send_action(port, "untap", {})
        process.wait()
    finally:
        timer.cancel()
    output = "".join(lines)
    return SuiteResult(process.returncode, output, parse_counts(output),
                       time.monotonic() - started, taps)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixture", default=DEFAULT_FIXTURE)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--version", default=FIDO2_VERSION)
    parser.add_argument("pytest_args", nargs="*", help="extra arguments for the suite's pytest")
    args = parser.parse_args(argv)
    suite = fetch_suite(args.version)
    with tempfile.TemporaryDirectory() as tmp, served_band(
            Path(tmp) / "fleet", args.fixture, slot=args.slot) as band_dir:
        result = run_suite(suite, band_dir, slot=args.slot, echo=True,
                           extra=tuple(args.pytest_args))
    print(f"python-fido2 {args.version} tests/device on {args.fixture}: {result.summary}")
    return result.returncode


if __name__ == "__main__":
    raise SystemExit(main())
