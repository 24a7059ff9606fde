"""Profiles of the misses with py-spy: a sampling profiler outside the process it watches.

A profiler inside the process (pyinstrument, cProfile) adds its own cost to every Python call,
which inflates Python code against C code by about the very margin a ratio to raw OpenSSL is
about. py-spy reads the interpreter's stacks from outside, so the shares it reports are the
shares the unprofiled process has.
"""

from __future__ import annotations

import collections
import linecache
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from types import TracebackType

__all__ = ["Attached", "available", "lines_under", "record"]

_FRAME = re.compile(r"^(?P<function>.*) \((?P<file>[^():]+):(?P<line>\d+)\)$")
ROOT = Path(__file__).resolve().parents[1]


def _executable() -> str | None:
    beside = Path(sys.executable).parent / "py-spy"
    return str(beside) if beside.exists() else shutil.which("py-spy")


def available() -> bool:
    return _executable() is not None


def record(argv: list[str], rate: int = 1000) -> list[tuple[list[str], int]]:
    """Run ``argv`` (a Python command) under py-spy; its sampled stacks, root first."""
    spy = _executable()
    if spy is None:
        raise RuntimeError("py-spy is not installed")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "stacks.txt"
        subprocess.run([spy, "record", "--rate", str(rate), "--format", "raw", "--nonblocking",
                        "-o", str(out), "--", *argv], check=True, capture_output=True, cwd=ROOT)
        return _read(out)


def _read(out: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in out.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


class Attached:
    """py-spy sampling a running process for ``seconds`` while the caller drives it.

    ``busy`` is the share of those seconds its threads were on a CPU (idle threads are not
    sampled), ``stacks`` what they were doing."""

    def __init__(self, pid: int, seconds: float, rate: int = 1000) -> None:
        self.pid, self.seconds, self.rate = pid, seconds, rate
        self.stacks: list[tuple[list[str], int]] = []
        self._scratch = tempfile.TemporaryDirectory()
        self._out = Path(self._scratch.name) / "stacks.txt"
        self._process: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Attached:
        spy = _executable()
        if spy is None:
            raise RuntimeError("py-spy is not installed")
        self._process = subprocess.Popen(
            [spy, "record", "--pid", str(self.pid), "--duration", f"{self.seconds:g}",
             "--rate", str(self.rate), "--format", "raw", "-o",
             str(self._out)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        assert self._process is not None
        try:
            self._process.wait(self.seconds + 30)
            if self._out.exists():
                self.stacks = _read(self._out)
        finally:
            self._scratch.cleanup()

    @property
    def busy(self) -> float:
        return sum(count for _stack, count in self.stacks) / (self.rate * self.seconds)


def _source(frame: str) -> str:
    found = _FRAME.match(frame)
    if not found:
        return frame
    path = Path(found["file"])
    if not path.is_absolute():
        path = ROOT / path
    text = linecache.getline(str(path), int(found["line"])).strip()
    where = f"{Path(found['file']).name}:{found['line']}"
    return f"`{where}` {found['function']}: `{text}`" if text else f"`{where}`"


def lines_under(stacks: list[tuple[list[str], int]], function: str,
                top: int = 10) -> tuple[int, list[tuple[str, int]]]:
    """Samples inside ``function`` (a frame name such as ``Authenticator.process_cbor``),
    grouped by the source line one level below it that they were in (callees folded in)."""
    by_line: collections.Counter[str] = collections.Counter()
    for frames, count in stacks:
        starts = [i for i, frame in enumerate(frames) if frame.startswith(function + " (")]
        if not starts:
            continue
        below = frames[starts[0]:]
        key = below[1] if len(below) > 1 else below[0]
        by_line[key] += count
    total = sum(by_line.values())
    rows = [(_source(frame), count) for frame, count in by_line.most_common(top)]
    rest = total - sum(count for _line, count in rows)
    if rest:
        rows.append(("everything else", rest))
    return total, rows
