"""Command-line start-up: ``nymi-band --help`` and ``nymi-sim --help`` as a person runs them (a
new process each time), side by side with a bare interpreter (``python -c pass``) and with the
command-line libraries alone (``import typer, rich``), measured in the same run.

Each command runs once to warm the file cache and write the byte-code cache, then ``--runs``
times; the figures are the median, minimum and maximum wall time, and the median's ratio to the
bare interpreter's. Byte-code caching is on (as for an installed package), whatever
``PYTHONDONTWRITEBYTECODE`` says.

Run: .venv/bin/python bench/bench_cli_startup.py [--runs N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import typer, rich": [sys.executable, "-c", "import typer, rich.console, rich.table"],
    "nymi-band --help": [str(BIN / "nymi-band"), "--help"],
    "nymi-sim --help": [str(BIN / "nymi-sim"), "--help"],
    "nymi-band --version": [str(BIN / "nymi-band"), "--version"],
}


def _environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["NO_COLOR"] = "1"
    return env


def measure(command: list[str], runs: int, env: dict[str, str]) -> list[float]:
    subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
    times: list[float] = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run(command, env=env, check=True, stdout=subprocess.DEVNULL)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=15, help="runs of each command")
    args = parser.parse_args()
    env = _environment()
    results = {name: measure(command, args.runs, env) for name, command in CASES.items()}
    floor = statistics.median(results["python -c pass"])
    print(f"{args.runs} runs each (seconds); ratio = median / median of python -c pass")
    print(f"{'command':<22} {'median':>8} {'min':>8} {'max':>8} {'ratio':>7}")
    for name, times in results.items():
        median = statistics.median(times)
        print(f"{name:<22} {median:8.3f} {min(times):8.3f} {max(times):8.3f} "
              f"{median / floor:7.1f}")


if __name__ == "__main__":
    main()
