"""The enterprise server under load (Locust): enrollments per second and latency percentiles.

Each simulated user owns an emulated band (in its Locust process) and loops: enrollment (then
self-service re-enrollment), a FIDO2 key created and a sign-in with it, all through
``nymi-sim nes serve`` over HTTP on loopback. Measured on SQLite and on PostgreSQL (a throwaway
server started for the run, durability off as in the tests) with 1, 4 and 16 concurrent users
in one Locust process, and with 4 users under a Locust master and two workers. The reference of
each rate is one user on the same database in the same run; latencies are per flow from the
users' ledgers (every flow completed, whatever Locust's last report caught). One Locust process
runs every user's emulated band on its one core (gevent), so 1, 4 and 16 users in one process
enroll at about the same rate; a master with two workers spreads the bands over two processes and
about doubles it: here the clients' bands, not the server, are what limits the rate.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.core import Context, Figure, Series, Suite, Target, Values
from simulator.load.runner import free_tcp_port, nes_server, prepare_site, run_locust

PG_BIN = Path(os.environ.get("NYMI_PG_BIN", "/usr/lib/postgresql/15/bin"))
QUICK = (("sqlite", 1, 0),)
FULL = (("sqlite", 1, 0), ("sqlite", 4, 0), ("sqlite", 16, 0), ("sqlite", 4, 2),
        ("postgresql", 1, 0), ("postgresql", 4, 0), ("postgresql", 16, 0),
        ("postgresql", 4, 2))


@contextlib.contextmanager
def postgres() -> Iterator[Callable[[str], str]]:
    """A throwaway PostgreSQL server (as the ``postgres`` user when run as root); a function
    that creates a fresh database on it and returns its URL.

    Every measurement gets a database of its own: the bands of one run are new bands that reuse
    the serial numbers of the last, and the NES rightly refuses a band it knows by that serial
    with another device id."""
    if not (PG_BIN / "pg_ctl").exists():
        raise RuntimeError(f"PostgreSQL binaries not found in {PG_BIN}")
    base = Path(tempfile.mkdtemp(prefix="nymi-bench-pg-"))
    prefix: list[str] = []
    if os.geteuid() == 0:
        pg = pwd.getpwnam("postgres")
        os.chown(base, pg.pw_uid, pg.pw_gid)
        prefix = ["runuser", "-u", "postgres", "--"]
    data, port = base / "data", free_tcp_port()
    subprocess.run([*prefix, str(PG_BIN / "initdb"), "-D", str(data), "-U", "postgres",
                    "-A", "trust"], check=True, capture_output=True)
    options = (f"-p {port} -k {base} -c listen_addresses=127.0.0.1 -c fsync=off "
               "-c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
    subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-o", options, "-w",
                    "-l", str(base / "log"), "start"], check=True, capture_output=True)

    def database(name: str) -> str:
        subprocess.run([*prefix, str(PG_BIN / "createdb"), "-h", "127.0.0.1", "-p", str(port),
                        "-U", "postgres", name], check=True, capture_output=True)
        return f"postgresql+psycopg://postgres@127.0.0.1:{port}/{name}"

    try:
        yield database
    finally:
        subprocess.run([*prefix, str(PG_BIN / "pg_ctl"), "-D", str(data), "-m", "immediate",
                        "stop"], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _key(db: str, users: int, workers: int) -> str:
    return f"{db}_{users}u" + (f"_{workers}w" if workers else "")


def _one(ctx: Context, db: str, users: int, workers: int,
         database: Callable[[str], str] | None, seconds: float) -> Values:
    key = _key(db, users, workers)
    root = ctx.scratch / f"load-{key}-{time.monotonic_ns()}"
    url = database(f"nes_{key}_{time.monotonic_ns()}") if database else None
    prepare_site(root, users=users, workers=workers, database=url)
    with nes_server(root) as nes:
        result = run_locust(nes, root / "users", users=users, seconds=seconds,
                            workers=workers)
    values = {f"{key}_rate": result.enrollments_per_s, f"{key}_fail": result.failures}
    for flow, short in (("reenroll", "reenroll"), ("enroll", "enroll"),
                        ("fido2 sign-in", "signin")):
        row = result.rows.get(flow)
        if row and row["count"]:
            values[f"{key}_{short}_p50"] = row["median_ms"]
            values[f"{key}_{short}_p95"] = row["p95_ms"]
    return values


def measure(ctx: Context) -> Values:
    seconds = ctx.pick(4, 8)
    values: Values = {}
    plan = QUICK if ctx.quick else FULL
    with contextlib.ExitStack() as stack:
        urls: dict[str, Callable[[str], str] | None] = {"sqlite": None}
        if any(db == "postgresql" for db, _u, _w in plan):
            try:
                urls["postgresql"] = stack.enter_context(postgres())
            except (RuntimeError, subprocess.CalledProcessError, KeyError) as exc:
                ctx.notes["load"] = f"PostgreSQL was not measured: {exc}"
        for db, users, workers in plan:
            if db in urls:
                values.update(_one(ctx, db, users, workers, urls[db], seconds))
    return values


def _figures() -> list[Figure]:
    figures = []
    for db, users, workers in FULL:
        key = _key(db, users, workers)
        who = f"{db}, {users} users" + (f", master + {workers} workers" if workers else "")
        figures += [
            Figure(f"{key}_rate", f"{who}: enrollments/s", "/s", reference=f"{db}_1u_rate",
                   digits=2),
            Figure(f"{key}_reenroll_p50", f"{who}: self-service re-enrollment p50", "ms",
                   digits=0),
            Figure(f"{key}_reenroll_p95", f"{who}: self-service re-enrollment p95", "ms",
                   digits=0),
            Figure(f"{key}_signin_p95", f"{who}: FIDO2 sign-in p95", "ms", digits=0),
            Figure(f"{key}_fail", f"{who}: failed flows", "", target=Target("<=", 0, "value"),
                   digits=0),
        ]
    return figures


SUITE = Suite(
    name="load",
    title="The enterprise server under load (Locust, `nymi-sim load`)",
    measure=measure,
    figures=_figures(),
    runs=1,
    series=[Series(f"re-enrollment p50 latency, {db}", "concurrent users",
                   tuple((n, f"{db}_{n}u_reenroll_p50") for n in (1, 4, 16)))
            for db in ("sqlite", "postgresql")],
    prose=__doc__.split("\n\n", 1)[1] if __doc__ else "",
)
