"""NES HTTP API under password guessing: how much slower a signed-in client's calls get while
eight clients guess HTTP Basic passwords as fast as they can.

A real uvicorn on loopback serves one NES whose directory hashes passwords with the production
scrypt cost (N=2^14). The good client (127.0.0.1) calls ``GET /api/v1/me`` with HTTP Basic on
every call; each guessing client has its own loopback address (127.0.0.2 …) and tries a wrong
password for a different unknown account each time. Two servers are measured in the same run:

- ``guarded``: the default limits (verified credentials remembered, two password hashes at a
  time, a client refused for a while after 20 failed sign-ins);
- ``unguarded``: the same server with those bounds lifted (no remembered credentials, no hash
  limit, no throttling), i.e. one scrypt per Basic call as before they existed.

Figures: the good client's median latency alone and under guessing, and the ratio of the two.
The guarded server remembers the good client's verified password while the directory keeps the
same hash; the guessers share two hash slots, so their rate is bounded by the server, not by how
many of them there are (each would also be refused for 5 minutes after 20 failures).

"""

from __future__ import annotations

import statistics
import threading
import time

import httpx

from bench.core import Context, Figure, Suite, Values
from simulator.nes import ADMIN_GROUP, Directory, Nes, create_app
from simulator.nes.api_guard import ApiLimits
from simulator.nes.served import Served

GOOD = ("CORP\\tw-user2", "the-right-password")
GUESSERS = 8
CALLS = 40
UNGUARDED = ApiLimits(credential_cache_s=0.0, concurrent_hashes=1000, client_failures=10**9,
                      account_failures=10**9)


def _good_latencies(url: str, calls: int) -> list[float]:
    times = []
    with httpx.Client(base_url=url, auth=GOOD, timeout=60) as client:
        client.get("/api/v1/me").raise_for_status()
        for _ in range(calls):
            start = time.perf_counter()
            client.get("/api/v1/me").raise_for_status()
            times.append(time.perf_counter() - start)
    return times


def _guess(url: str, address: str, stop: threading.Event, count: list[int]) -> None:
    transport = httpx.HTTPTransport(local_address=address)
    with httpx.Client(base_url=url, transport=transport, timeout=60) as client:
        i = 0
        while not stop.is_set():
            client.get("/api/v1/me", auth=(f"CORP\\guess-{address}-{i}", "wrong"))
            i += 1
    count.append(i)


def _server(limits: ApiLimits | None, calls: int) -> tuple[float, float, int]:
    directory = Directory()
    directory.add_user(GOOD[0], GOOD[1])
    directory.add_user("CORP\\admin", GOOD[1], groups=[ADMIN_GROUP])
    with Nes.open("sqlite://", directory=directory) as nes:
        served = Served(create_app(nes, limits=limits))
        try:
            alone = statistics.median(_good_latencies(served.url, calls))
            stop, counts = threading.Event(), list[int]()
            threads = [threading.Thread(target=_guess, args=(served.url, f"127.0.0.{i + 2}",
                                                             stop, counts))
                       for i in range(GUESSERS)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            loaded = statistics.median(_good_latencies(served.url, calls))
            stop.set()
            for t in threads:
                t.join(60)
        finally:
            served.stop()
    return alone, loaded, sum(counts)


def measure(ctx: Context) -> Values:
    values: Values = {}
    for name, limits in (("unguarded", UNGUARDED), ("guarded", None)):
        alone, loaded, guesses = _server(limits, int(ctx.pick(5, CALLS)))
        values[f"{name}_alone"] = alone * 1000
        values[f"{name}_loaded"] = loaded * 1000
        values[f"{name}_guesses"] = guesses
    return values


def _figures() -> list[Figure]:
    figures = []
    for name in ("unguarded", "guarded"):
        figures += [
            Figure(f"{name}_alone", f"{name}: GET /api/v1/me with Basic, alone", "ms",
                   reference="unguarded_alone" if name == "guarded" else None, digits=2),
            Figure(f"{name}_loaded", f"{name}: the same while 8 clients guess passwords", "ms",
                   reference=f"{name}_alone", digits=2),
            Figure(f"{name}_guesses", f"{name}: guesses answered meanwhile", "", digits=0),
        ]
    return figures


SUITE = Suite(
    name="nes_auth",
    title="NES HTTP API under password guessing",
    measure=measure,
    figures=_figures(),
    runs=1,
    prose=__doc__.split("\n\n", 1)[1] if __doc__ else "",
)
