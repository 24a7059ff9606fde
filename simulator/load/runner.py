"""``nymi-sim load``: prepare a site, serve it, run the Locust file, summarise.

Locust runs in its own processes (it patches the standard library for gevent when imported):
one headless process, or a master and ``workers`` worker processes on this machine, all on
loopback. The summary is read from Locust's CSV statistics.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from nymi_device.errors import BandUnreachableError, InvalidInputError, UnreachableReason
from simulator.load.scenario import (
    DEFAULT_PASSWORD,
    DIR_ENV,
    PASSWORD_ENV,
    account_name,
    read_ledger,
)

LOCUSTFILE = Path(__file__).with_name("locustfile.py")
OWN = "Allow a user to re-enroll / re-register their Nymi Band"
ANY = "Allow a user to re-enroll any active Nymi Band"
ENROLLMENTS = ("enroll", "reenroll")


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_site(root: Path, *, users: int, workers: int, database: str | None = None,
                 password: str = DEFAULT_PASSWORD) -> None:
    """A site in fleet directory ``root`` with an account per simulated user (per process) and
    the self-service re-enrollment the users run allowed."""
    from simulator.nes import DEFAULT_GROUP_POLICY, open_site

    urls = {"nes": database} if database else None
    with open_site(root, urls=urls) as site:
        directory = site.directory
        for worker in range(max(1, workers)):
            for index in range(users):
                directory.add_user(f"CORP\\{account_name(worker, index)}", password,
                                   replace_existing=True)
        site.enrollment.update_policy(DEFAULT_GROUP_POLICY, {OWN: True, ANY: True})


@contextlib.contextmanager
def nes_server(root: Path, port: int | None = None) -> Iterator[str]:
    """``nymi-sim nes serve`` for the site in ``root``; yields its URL (``…/nes``)."""
    port = port or free_tcp_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "nes", "serve", "--port", str(port),
         "--sim-dir", str(root)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/nes"
    try:
        _wait_http(f"{url}/openapi.json", process)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_http(url: str, process: subprocess.Popen[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - loopback URL we built
                return
        except OSError:
            if process.poll() is not None:
                err = process.stderr.read() if process.stderr else ""
                raise BandUnreachableError(f"nymi-sim nes serve stopped: {err.strip()[-300:]}",
                                           UnreachableReason.TRANSPORT_FAILED) from None
            if time.monotonic() > deadline:
                raise BandUnreachableError(f"the NES did not answer at {url}",
                                           UnreachableReason.TRANSPORT_FAILED) from None
            time.sleep(0.1)


@dataclass
class LoadResult:
    users: int
    workers: int
    seconds: float
    rows: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def enrollments(self) -> float:
        return sum(self.rows.get(n, {}).get("count", 0) for n in ENROLLMENTS)

    @property
    def enrollments_per_s(self) -> float:
        return self.enrollments / self.seconds if self.seconds else 0.0

    @property
    def failures(self) -> float:
        return sum(row.get("failures", 0) for row in self.rows.values())

    def to_dict(self) -> dict[str, Any]:
        return {"users": self.users, "workers": self.workers, "seconds": self.seconds,
                "enrollments": self.enrollments, "enrollments_per_s": self.enrollments_per_s,
                "failures": self.failures,
                "flows": {name: {k: (None if isinstance(v, float) and math.isnan(v) else v)
                                 for k, v in row.items()} for name, row in self.rows.items()}}


def run_locust(url: str, scratch: Path, *, users: int, seconds: float, workers: int = 0,
               password: str = DEFAULT_PASSWORD) -> LoadResult:
    """Run the Locust file headless against ``url``: single-process, or master + workers."""
    if users < 1 or seconds <= 0 or workers < 0:
        raise InvalidInputError("need at least 1 user, a positive duration and >= 0 workers")
    scratch.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, DIR_ENV: str(scratch), PASSWORD_ENV: password}
    stats = scratch / "stats"
    common = ["-f", str(LOCUSTFILE), "--host", url, "--headless", "--only-summary",
              "--loglevel", "WARNING", "--stop-timeout", "30"]
    locust = [sys.executable, "-m", "locust"]
    run = ["-u", str(users), "-r", str(users), "-t", f"{seconds:g}s", "--json-file", str(stats)]
    children: list[subprocess.Popen[str]] = []
    started = time.monotonic()
    log = open(scratch / "workers.log", "a", encoding="utf-8")
    try:
        if workers == 0:
            main = subprocess.Popen([*locust, *common, *run], env=env, text=True,
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        else:
            port = free_tcp_port()
            main = subprocess.Popen(
                [*locust, *common, *run, "--master", "--expect-workers", str(workers),
                 "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port)],
                env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
            for _ in range(workers):
                children.append(subprocess.Popen(
                    [*locust, *common, "--worker", "--master-host", "127.0.0.1",
                     "--master-port", str(port)], env=env, text=True,
                    stdout=log, stderr=subprocess.STDOUT))
        out, _ = main.communicate(timeout=seconds + 120)
    finally:
        for child in children:
            try:
                child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
        log.close()
    elapsed = time.monotonic() - started
    rows = summarise_ledger(read_ledger(scratch))
    if not rows:
        workers_said = (scratch / "workers.log").read_text()[-400:]
        raise BandUnreachableError(f"Locust reported nothing: {out.strip()[-400:]} "
                                   f"{workers_said}",
                                   UnreachableReason.TRANSPORT_FAILED)
    ran = min(seconds, elapsed)
    for row in rows.values():
        row["per_s"] = row["count"] / ran
    return LoadResult(users, workers, ran, rows)


def _percentile(ordered: list[float], fraction: float) -> float:
    if not ordered:
        return float("nan")
    return ordered[min(len(ordered) - 1, max(0, math.ceil(fraction * len(ordered)) - 1))]


def summarise_ledger(ledger: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per flow: count, failures and latency percentiles (ms) of every process's ledger."""
    rows: dict[str, dict[str, float]] = {}
    for kind in dict.fromkeys(row["kind"] for row in ledger):
        done = [row for row in ledger if row["kind"] == kind]
        times = sorted(float(row["ms"]) for row in done if row["ok"])
        rows[kind] = {"count": float(len(times)),
                      "failures": float(sum(1 for row in done if not row["ok"])),
                      "median_ms": _percentile(times, 0.5), "p95_ms": _percentile(times, 0.95),
                      "p99_ms": _percentile(times, 0.99),
                      "mean_ms": sum(times) / len(times) if times else float("nan")}
    return rows
