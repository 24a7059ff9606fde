"""``python -m bench``: every benchmark suite, several runs each, and ``docs/benchmarks.md``.

    .venv/bin/python -m bench             # the whole set (under 10 minutes on 2 cores)
    .venv/bin/python -m bench --quick     # each suite once, briefly: a smoke test, under 60 s
    .venv/bin/python -m bench --only ctap --only band

Each figure is printed with the median, min and max over the runs and the ratio to its
reference measured in the same run. A full run of every suite rewrites ``docs/benchmarks.md``
(``--out`` writes elsewhere, ``--no-write`` nowhere); a quick or partial run writes only when
``--out`` is given.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import time
import traceback
from pathlib import Path

from bench.core import Context, Suite, SuiteResult, fmt, summarise
from bench.report import write_markdown

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs" / "benchmarks.md"

#: Suite modules in run order; each defines ``SUITE``.
SUITES = ("band", "ctap", "peers", "ctaphid_udp", "pcsc", "ble", "management", "ble_scan",
          "serve_all", "load", "flows", "flash_opens", "nes_auth", "profiles")


def load_suite(name: str) -> Suite:
    module = importlib.import_module(f"bench.suites.{name}")
    suite = module.SUITE
    assert isinstance(suite, Suite)
    return suite


def run_suite(suite: Suite, ctx: Context, runs: int) -> SuiteResult:
    samples = []
    started = time.perf_counter()
    error = None
    for index in range(runs):
        try:
            samples.append(suite.measure(ctx))
        except Exception as exc:  # one broken suite must not hide the others' figures
            error = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
            break
        print(f"  run {index + 1}/{runs} done ({time.perf_counter() - started:.1f} s)",
              flush=True)
    result = summarise(suite, samples, time.perf_counter() - started)
    result.error = error
    return result


def print_result(result: SuiteResult) -> None:
    width = max([len(f.figure.label) for f in result.figures] + [20])
    print(f"{'figure':<{width}} {'median':>10} {'min':>10} {'max':>10} unit   ratio (ref)  target")
    for item in result.figures:
        fig, v = item.figure, item.value
        ratio = f"{item.ratio.median:.2f}× {fig.reference}" if item.ratio else ""
        target = ""
        if fig.target is not None:
            target = fig.target.text(fig.unit) + {True: " met", False: " MISSED",
                                                  None: ""}[item.met]
        print(f"{fig.label:<{width}} {fmt(v.median, fig.digits):>10} {fmt(v.low, fig.digits):>10} "
              f"{fmt(v.high, fig.digits):>10} {fig.unit:<6} {ratio:<12} {target}")
    for growth in result.growth:
        print(f"growth of {growth.series.name}: cost ∝ {growth.series.size_label}^"
              f"{growth.exponent:.2f} ({growth.verdict})")
    if result.error:
        print(f"SUITE FAILED: {result.error}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true",
                        help="each suite once, with short windows and small sizes (smoke test)")
    parser.add_argument("--only", action="append", choices=SUITES, metavar="SUITE",
                        help=f"run only this suite (repeatable): {', '.join(SUITES)}")
    parser.add_argument("--runs", type=int, help="runs per suite (default 3; --quick: 1)")
    parser.add_argument("--out", type=Path, help="write the Markdown report here")
    parser.add_argument("--no-write", action="store_true", help="write no report")
    args = parser.parse_args(argv)
    names = list(args.only or SUITES)
    runs = args.runs or (1 if args.quick else 3)
    results: list[SuiteResult] = []
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="nymi-bench-") as scratch:
        ctx = Context(quick=args.quick, runs=runs, scratch=Path(scratch))
        for name in names:
            suite = load_suite(name)
            suite_runs = 1 if args.quick else (suite.runs or runs)
            print(f"== {suite.title} [{name}], {suite_runs} run(s)", flush=True)
            result = run_suite(suite, ctx, suite_runs)
            print_result(result)
            results.append(result)
    total = time.perf_counter() - started
    print(f"== all suites: {total:.1f} s")
    out = args.out
    if out is None and not args.quick and args.only is None:
        out = DOCS
    if out is not None and not args.no_write:
        write_markdown(out, results, ctx, total, argv if argv is not None else sys.argv[1:])
        print(f"wrote {out}")
    failed = [r.suite.name for r in results if r.error]
    if failed:
        print(f"failed suites: {', '.join(failed)}")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
