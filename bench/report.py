"""``docs/benchmarks.md`` from one run of the suites: machine, versions, date, every figure."""

from __future__ import annotations

import datetime
import importlib.metadata
import os
import platform
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from bench.core import Context, SuiteResult, fmt

PACKAGES = ("cryptography", "bumble", "bleak", "fido2", "pyscard", "SQLAlchemy", "psycopg",
            "fastapi", "uvicorn", "locust", "pyinstrument")


def machine() -> list[str]:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = ""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                memory = f", {int(line.split()[1]) / 1024 / 1024:.1f} GiB RAM"
    except OSError:
        pass
    return [f"{cpu}, {os.cpu_count()} cores{memory}",
            f"{platform.system()} {platform.release()}"]


def versions() -> str:
    from cryptography.hazmat.backends.openssl.backend import backend

    found = [f"Python {platform.python_version()}", backend.openssl_version_text()]
    for name in PACKAGES:
        try:
            found.append(f"{name} {importlib.metadata.version(name)}")
        except importlib.metadata.PackageNotFoundError:
            continue
    postgres = shutil.which("postgres") or "/usr/lib/postgresql/15/bin/postgres"
    if Path(postgres).exists():
        out = subprocess.run([postgres, "--version"], capture_output=True, text=True).stdout
        found.append(out.strip().replace("postgres (PostgreSQL)", "PostgreSQL"))
    return ", ".join(found)


def _row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(cells) + " |"


def suite_section(result: SuiteResult) -> list[str]:
    suite = result.suite
    n = len(result.runs)
    lines = [f"## {suite.title} (`bench/suites/{suite.name}.py`)", ""]
    if suite.prose:
        lines += [suite.prose.strip(), ""]
    if result.error:
        lines += [f"**This suite failed in this run:** `{result.error}`", ""]
    lines += [f"{n} run(s), {result.seconds:.0f} s in all. Median (min–max) over the runs; the "
              "ratio is taken within each run against the reference named.", ""]
    lines.append(_row(["figure", "median", "min–max", "unit", "ratio (min–max)", "reference",
                       "target", ""]))
    lines.append(_row(["---", "---:", "---:", "---", "---:", "---", "---", "---"]))
    labels = {f.figure.key: f.figure.label for f in result.figures}
    for item in result.figures:
        fig, v = item.figure, item.value
        ratio = ""
        if item.ratio is not None:
            ratio = (f"{item.ratio.median:.2f}× ({item.ratio.low:.2f}–{item.ratio.high:.2f})")
        ref = labels.get(fig.reference or "", fig.reference or "") if fig.reference else ""
        verdict = {True: "met", False: "**missed**", None: ""}[item.met]
        lines.append(_row([fig.label, fmt(v.median, fig.digits),
                           f"{fmt(v.low, fig.digits)}–{fmt(v.high, fig.digits)}", fig.unit,
                           ratio, ref, fig.target.text(fig.unit) if fig.target else "", verdict]))
    lines.append("")
    return lines


def growth_section(results: Sequence[SuiteResult]) -> list[str]:
    lines = ["## Growth", "",
             "For every sized suite, the exponent b of the least-squares fit cost ∝ size^b over "
             "the sizes measured (b ≈ 1 linear, b > 1.15 flagged superlinear; for per-item "
             "figures the total is per-item cost × size).", "",
             _row(["suite", "series", "size", "points (size: cost)", "b", "verdict"]),
             _row(["---", "---", "---", "---", "---:", "---"])]
    for result in results:
        for growth in result.growth:
            points = ", ".join(f"{s:g}: {c:.3g}" for s, c in growth.points)
            verdict = "**superlinear**" if growth.superlinear else growth.verdict
            lines.append(_row([result.suite.name, growth.series.name,
                               growth.series.size_label, points, f"{growth.exponent:.2f}",
                               verdict]))
    lines.append("")
    return lines


def write_markdown(path: Path, results: Sequence[SuiteResult], ctx: Context, total: float,
                   argv: Sequence[str]) -> None:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    command = " ".join(["python -m bench", *argv])
    lines = ["# Benchmarks", "",
             "Written by `python -m bench` (every suite, several runs each; `--quick` is a smoke "
             "test of the same code). Each figure is measured side by side with its reference in "
             "the same run, and the ratio is the figure that matters: absolute times are for "
             "orientation only, on a machine shared with other work.", "",
             f"- Date: {now}; command: `{command}`; {total:.0f} s in all",
             f"- Machine: {'; '.join(machine())}",
             f"- Versions: {versions()}", ""]
    for result in results:
        lines += suite_section(result)
        note = ctx.notes.get(result.suite.name)
        if note:
            lines += [note.strip(), ""]
    lines += growth_section(results)
    if ctx.profiles:
        lines += ["## Profiles of the misses", ""]
        for name, text in ctx.profiles.items():
            lines += [f"### {name}", "", text.strip(), ""]
    path.write_text("\n".join(lines).rstrip() + "\n", encoding="utf-8")
