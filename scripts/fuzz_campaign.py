#!/usr/bin/env python3
"""A long fuzzing campaign over the registered parsers (the suite runs the same, briefly).

Usage::

    .venv/bin/python scripts/fuzz_campaign.py                  # every target, 60 s each
    .venv/bin/python scripts/fuzz_campaign.py --minutes 5 journal ctap-cbor
    .venv/bin/python scripts/fuzz_campaign.py --list

Each target runs in rounds of fresh random examples until its time is up; a failure stops the
campaign with the falsifying example and the seed that replays it (``--seed``). The summary gives
examples and examples per second per target. Exit status: 0 clean, 1 a target failed.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.fuzzing import BY_NAME, TARGETS, FuzzTarget, open_target

ROUND = 2000  # examples per round; each round draws a new seed


def campaign(target: FuzzTarget, seconds: float, seed: int | None) -> tuple[int, float]:
    """Run ``target`` for ``seconds``; returns (examples, wall seconds). Raises on a failure."""
    count = [0]
    rng = random.Random(seed)
    start = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"fuzz-{target.name}-") as tmp, \
            open_target(target, Path(tmp), count) as run:
        rounds = 0
        while time.monotonic() - start < seconds:
            round_seed = rng.randrange(2**32)
            try:
                run(ROUND, round_seed)
            except BaseException:
                print(f"\n{target.name}: FAILED in round {rounds} (replay: --seed {seed} "
                      f"{target.name})", file=sys.stderr)
                raise
            rounds += 1
    return count[0], time.monotonic() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="*", help="target names (default: all)")
    parser.add_argument("--minutes", type=float, default=1.0, help="time per target")
    parser.add_argument("--seed", type=int, default=None, help="replay a campaign")
    parser.add_argument("--list", action="store_true", help="list the targets and exit")
    args = parser.parse_args(argv)
    if args.list:
        for target in TARGETS:
            print(f"{target.name:12} {target.parser}")
        return 0
    unknown = [name for name in args.targets if name not in BY_NAME]
    if unknown:
        print(f"error: unknown target(s) {', '.join(unknown)} (see --list)", file=sys.stderr)
        return 2
    if not (args.minutes > 0 and args.minutes < 24 * 60):
        print("error: --minutes must be between 0 and 1440", file=sys.stderr)
        return 2
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(2**32)
    chosen = [BY_NAME[name] for name in args.targets] or TARGETS
    print(f"fuzz campaign: {len(chosen)} target(s), {args.minutes:g} min each, seed {seed}")
    total = 0
    for target in chosen:
        try:
            examples, wall = campaign(target, args.minutes * 60, seed)
        except Exception:
            traceback.print_exc()
            return 1
        total += examples
        print(f"  {target.name:12} {examples:>9} examples  {examples / wall:>8.0f}/s  clean")
    print(f"total {total} examples, no failure")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
