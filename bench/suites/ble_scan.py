"""How many advertising bands one scan process sustains.

For each N, N simulated bands advertise on one :class:`~simulator.frontends.ble.VirtualRadio`
(every ``--interval-ms``, 100 ms by default: the simulated band's default) and one scan listens
for ``--seconds`` after a warm-up. Each advertisement heard goes through the path
``nymi-band watch`` uses: Bumble host → bleak with our Bumble backend → :func:`scan_bands` →
:class:`~hosttools.watch.PresenceMonitor` (sighting decoded, presence tracker fed).

Two set-ups:

* ``tcp`` (the scan process alone): the bands run in a child process behind HCI over TCP
  (:class:`~simulator.frontends.hci_bridge.HciBridge`), as ``nymi-sim serve --ble`` serves them;
  this process only scans. Its CPU time per advertisement report gives its own ceiling.
* ``inprocess``: bands and scan on one event loop (the fast path of the tests).

Per N: the fraction of bands heard, advertisements received per band per second against the
advertising rate, what the radio offered (advertising PDUs the bands' controllers put on the
link, counted on the link), the CPU each side used, how long the bands took to come on the air
(``start s``) and how long after the scan began the first report arrived (``1st rep s``: the
scan's own HCI start-up). Two knees: bands and scan together (the first N where a band goes
unheard or the received rate falls under 90 % of the advertising rate), and the scan alone (the
first N where it receives under 90 % of what the radio offered).

The virtual link hands an advertising PDU only to the controllers that listen (the scan's), so
the simulator's own cost grows with N; the child's CPU column shows when the simulator, not the
scan, is the limit.

    .venv/bin/python -m bench.suites.ble_scan [--counts 10,25,50,100,200] [--seconds 5]

The simulator's cost grows with the advertising rate and the scan's with the report rate, so
fewer bands advertising faster load the scan the same way at a smaller simulator start-up:

    .venv/bin/python -m bench.suites.ble_scan --mode tcp --interval-ms 10 --counts 10,20,40,60,80
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from bumble import ll
from bumble.controller import Controller

from bench.core import Context, Figure, Series, Suite, Values
from hosttools.watch import PresenceMonitor
from nymi_device.transport.ble import BandSighting, scan_bands
from nymi_device.transport.bumble_backend import HciSpec
from simulator.band.band import EmulatedBand
from simulator.fleet import Fleet
from simulator.frontends.ble import BandRadio, VirtualRadio
from simulator.frontends.ble_radio import RadioLink
from simulator.frontends.hci_bridge import HciBridge

ROOT = Path(__file__).resolve().parent.parent.parent
WARM_UP_S = 1.5
START_TIMEOUT_S = 180.0
KNEE_FRACTION = 0.9


class CountingLink(RadioLink):
    """The simulated radio's link, counting the advertising PDUs each advertiser puts on it."""

    def __init__(self) -> None:
        super().__init__()
        self.offered: Counter[str] = Counter()

    def send_advertising_pdu(self, sender_controller: Controller,
                             packet: ll.AdvertisingPdu) -> None:
        if isinstance(packet, ll.AdvInd | ll.AdvExtInd):
            self.offered[packet.advertiser_address.to_string(with_type_qualifier=False)] += 1
        super().send_advertising_pdu(sender_controller, packet)


@dataclass
class Result:
    mode: str
    bands: int
    seconds: float
    interval_ms: float
    heard: Counter[str]
    offered: Counter[str]
    scan_cpu_s: float
    sim_cpu_s: float
    start_s: float
    first_report_s: float

    @property
    def nominal(self) -> float:
        return 1000.0 / self.interval_ms

    def per_band(self, counts: Counter[str]) -> list[float]:
        return [counts.get(address, 0) / self.seconds for address in self.offered] or [0.0]

    @property
    def seen(self) -> float:
        return sum(1 for address in self.offered if self.heard.get(address)) / self.bands

    @property
    def received_mean(self) -> float:
        return statistics.fmean(self.per_band(self.heard))

    @property
    def reports(self) -> int:
        return sum(self.heard.values())

    @property
    def offered_mean(self) -> float:
        return statistics.fmean(self.per_band(self.offered))

    def healthy(self) -> bool:
        """Every band heard, at >= 90 % of its advertising rate."""
        return self.seen == 1.0 and self.received_mean >= KNEE_FRACTION * self.nominal

    @property
    def scan_started(self) -> bool:
        """The scan's HCI start-up finished before the window (false when the simulator's
        saturated loop held its commands back: nothing to say about the scan then)."""
        return self.first_report_s <= WARM_UP_S

    def scan_kept_up(self) -> bool:
        """Every band on the air heard, >= 90 % of what the radio offered received."""
        heard_all = all(self.heard.get(address) for address, n in self.offered.items() if n)
        return heard_all and self.reports >= KNEE_FRACTION * sum(self.offered.values())

    def row(self) -> str:
        received = self.per_band(self.heard)
        offered = self.offered_mean
        of_offered = 100 * self.reports / max(1, sum(self.offered.values()))
        per_report = self.scan_cpu_s / self.reports * 1e6 if self.reports else float("nan")
        sim = f"{100 * self.sim_cpu_s / self.seconds:6.0f} %" if self.sim_cpu_s >= 0 else "       -"
        return (f"{self.mode:<9} {self.bands:>5} {100 * self.seen:6.1f} % "
                f"{statistics.fmean(received):8.2f} {min(received):6.2f} "
                f"{100 * statistics.fmean(received) / self.nominal:6.1f} % {offered:9.2f} "
                f"{of_offered:6.1f} % "
                f"{self.reports / self.seconds:8.0f} {100 * self.scan_cpu_s / self.seconds:6.0f} %"
                f" {sim} {per_report:8.1f} {self.start_s:7.1f} {self.first_report_s:9.2f}")


HEADER = (f"{'mode':<9} {'bands':>5} {'heard':>8} {'rx/band/s':>8} {'min':>6} {'of rate':>8} "
          f"{'offered/s':>9} {'of offer':>8} {'rx tot/s':>8} {'scan CPU':>8} {'sim CPU':>8} "
          f"{'µs/rep':>8} {'start s':>7} {'1st rep s':>9}")


@contextlib.contextmanager
def _bands(count: int) -> Iterator[list[EmulatedBand]]:
    """``count`` worn, authenticated Nymi Band 3.0 bands in a throw-away fleet."""
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        fleet = Fleet(Path(tmp), durable=False)
        bands: list[EmulatedBand] = []
        for index in range(count):
            serial = f"BNCH-{index:05d}"
            fleet.add_band("nymi-band-3.0", serial)
            bands.append(stack.enter_context(fleet.open_band(serial, save=False)))
        yield bands


async def _on_air(radio: VirtualRadio, bands: list[EmulatedBand],
                  interval_ms: float) -> list[BandRadio]:
    radios = [BandRadio(radio, band, distance_m=1.0, advertising_interval_ms=interval_ms)
              for band in bands]
    await asyncio.wait_for(asyncio.gather(*(r.start() for r in radios)), START_TIMEOUT_S)
    return radios


class _Window:
    """Counts sightings per address while open; feeds every sighting to a presence monitor."""

    def __init__(self) -> None:
        self.open = False
        self.heard: Counter[str] = Counter()
        self.monitor = PresenceMonitor()
        self.started = time.perf_counter()
        self.first_report_s: float | None = None

    def on_sighting(self, sighting: BandSighting) -> None:
        if self.first_report_s is None:
            self.first_report_s = time.perf_counter() - self.started
        self.monitor.feed(sighting)
        if self.open:
            self.heard[sighting.address] += 1


async def _measure_scan(hci: HciSpec, seconds: float, on_open: Callable[[], object],
                        on_close: Callable[[], object]) -> tuple[Counter[str], float, float]:
    window = _Window()
    scan = asyncio.create_task(scan_bands(WARM_UP_S + seconds + 1.0, hci=hci,
                                          on_sighting=window.on_sighting))
    await asyncio.sleep(WARM_UP_S)
    on_open()
    cpu = time.process_time()
    window.open = True
    await asyncio.sleep(seconds)
    window.open = False
    cpu = time.process_time() - cpu
    on_close()
    scan.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await scan
    first = window.first_report_s
    return window.heard, cpu, first if first is not None else float("nan")


async def run_inprocess(count: int, seconds: float, interval_ms: float) -> Result:
    with _bands(count) as bands:
        radio = VirtualRadio()
        link = radio.link = CountingLink()
        started = time.perf_counter()
        radios = await _on_air(radio, bands, interval_ms)
        start_s = time.perf_counter() - started
        try:
            link.offered.clear()
            snapshot: dict[str, Counter[str]] = {}
            heard, cpu, first = await _measure_scan(
                radio.host_transport(), seconds, on_open=link.offered.clear,
                on_close=lambda: snapshot.update(offered=Counter(link.offered)))
        finally:
            for band_radio in radios:
                await band_radio.close()
    return Result("inprocess", count, seconds, interval_ms, heard, snapshot["offered"],
                  cpu, -1.0, start_s, first)


# -- the child process: the bands behind HCI over TCP --------------------------------------------

async def serve(count: int, interval_ms: float) -> None:
    """``--serve``: print ``READY port start_s``; on ``start`` reset counters, on ``stop`` print
    the offered counts and this process's CPU time since ``start`` as JSON; exit at EOF."""
    loop = asyncio.get_running_loop()
    with _bands(count) as bands:
        radio = VirtualRadio()
        link = radio.link = CountingLink()
        started = time.perf_counter()
        radios = await _on_air(radio, bands, interval_ms)
        bridge = HciBridge(radio, port=0)
        await bridge.start()
        print(f"READY {bridge.port} {time.perf_counter() - started:.3f}", flush=True)
        cpu = 0.0
        while line := await loop.run_in_executor(None, sys.stdin.readline):
            if line.strip() == "start":
                link.offered.clear()
                cpu = time.process_time()
            elif line.strip() == "stop":
                print(json.dumps({"cpu": time.process_time() - cpu,
                                  "offered": dict(link.offered)}), flush=True)
        await bridge.close()
        for band_radio in radios:
            await band_radio.close()


async def run_tcp(count: int, seconds: float, interval_ms: float) -> Result:
    child = subprocess.Popen(
        [sys.executable, "-m", "bench.suites.ble_scan", "--serve", str(count), "--interval-ms",
         str(interval_ms)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    assert child.stdin is not None and child.stdout is not None
    stdin, stdout = child.stdin, child.stdout
    try:
        ready = await asyncio.to_thread(stdout.readline)
        if not ready.startswith("READY"):
            raise RuntimeError(f"the simulated radio did not start ({ready.strip()!r})")
        _ready, port, start_s = ready.split()

        def send(command: str) -> None:
            stdin.write(command + "\n")
            stdin.flush()

        heard, cpu, first = await _measure_scan(f"tcp-client:127.0.0.1:{port}", seconds,
                                         on_open=lambda: send("start"),
                                         on_close=lambda: send("stop"))
        report = json.loads(await asyncio.to_thread(stdout.readline))
    finally:
        stdin.close()
        try:
            child.wait(30)
        except subprocess.TimeoutExpired:
            child.kill()
    return Result("tcp", count, seconds, interval_ms, heard, Counter(report["offered"]), cpu,
                  float(report["cpu"]), float(start_s), first)


def knee(results: list[Result], ok: Callable[[Result], bool], what: str) -> str:
    ordered = sorted(results, key=lambda r: r.bands)
    bad = next((r for r in ordered if not ok(r)), None)
    if bad is None:
        return f"no knee up to {ordered[-1].bands} bands ({what})"
    below = max((r.bands for r in ordered if ok(r) and r.bands < bad.bands), default=None)
    why = (f"{100 * bad.seen:.0f} % of bands heard, {bad.received_mean:.2f}/s per band of "
           f"{bad.offered_mean:.2f}/s offered and {bad.nominal:g}/s advertised")
    return (f"knee between {below} and {bad.bands} bands; at {bad.bands}: {why}"
            if below is not None else f"past the knee already at {bad.bands} bands: {why}")


async def main(counts: list[int], seconds: float, interval_ms: float, modes: list[str]) -> None:
    print(f"{seconds:g} s scans after a {WARM_UP_S:g} s warm-up; every band advertises every "
          f"{interval_ms:g} ms ({1000 / interval_ms:g}/s)\n")
    print(HEADER)
    by_mode: dict[str, list[Result]] = {mode: [] for mode in modes}
    for mode in modes:
        for count in counts:
            runner = run_tcp if mode == "tcp" else run_inprocess
            try:
                result = await runner(count, seconds, interval_ms)
            except (TimeoutError, RuntimeError) as exc:
                print(f"{mode:<9} {count:>5}  could not put the bands on the air: {exc!r}")
                break
            by_mode[mode].append(result)
            print(result.row(), flush=True)
    print()
    for mode, results in by_mode.items():
        if results:
            print(f"{mode}, bands and scan together: "
                  f"{knee(results, Result.healthy, 'all heard at >= 90 % of their rate')}")
            started = [r for r in results if r.scan_started]
            if started:
                print(f"{mode}, the scan alone: "
                      f"{knee(started, Result.scan_kept_up, '>= 90 % of what was on air heard')}")
            for r in results:
                if not r.scan_started:
                    first = ("none at all" if math.isnan(r.first_report_s)
                             else f"the first at {r.first_report_s:.2f} s")
                    print(f"{mode}, {r.bands} bands: no report before the window opened "
                          f"({first}): the scan's start-up waited behind the simulator, which "
                          "says nothing about the scan")
    tcp = [r for r in by_mode.get("tcp", []) if r.reports]
    if tcp:
        per_report = statistics.median(r.scan_cpu_s / r.reports for r in tcp)
        ceiling = 1 / per_report
        print(f"tcp: the scan process spends {per_report * 1e6:.0f} µs of CPU per advertisement "
              f"(median): at 100 % of one core it would take {ceiling:,.0f} reports/s, "
              f"{ceiling / (1000 / interval_ms):,.0f} bands at {1000 / interval_ms:g}/s each")


QUICK_COUNTS = (10,)
FULL_COUNTS = (10, 50, 100, 150)


def measure(ctx: Context) -> Values:
    """The ``tcp`` set-up (the scan process alone) at 10/s per band."""
    counts = QUICK_COUNTS if ctx.quick else FULL_COUNTS
    seconds = ctx.pick(1.0, 3.0)
    values: Values = {"nominal": 10.0}
    results = []
    for count in counts:
        result = asyncio.run(run_tcp(count, seconds, 100.0))
        results.append(result)
        values[f"rx_{count}"] = result.received_mean
        values[f"heard_{count}"] = 100 * result.seen
        values[f"sim_cpu_{count}"] = 100 * result.sim_cpu_s / seconds
        values[f"scan_cpu_{count}"] = 100 * result.scan_cpu_s / seconds
        values[f"start_{count}"] = result.start_s
    together = knee(results, Result.healthy, "all heard at >= 90 % of their rate")
    started = [r for r in results if r.scan_started]
    alone = (knee(started, Result.scan_kept_up, ">= 90 % of what was on air heard")
             if started else "no scan finished starting before its window")
    ctx.notes["ble_scan"] = f"Bands and scan together: {together}. The scan alone: {alone}."
    return values


def _figures() -> list[Figure]:
    figures = []
    for count in FULL_COUNTS:
        figures += [
            Figure(f"rx_{count}", f"{count} bands: received per band", "/s",
                   reference="nominal", digits=2),
            Figure(f"heard_{count}", f"{count} bands: heard", "%"),
            Figure(f"sim_cpu_{count}", f"{count} bands: radio (child) CPU", "%", digits=0),
            Figure(f"scan_cpu_{count}", f"{count} bands: scan CPU", "%", digits=0),
        ]
    return figures


SUITE = Suite(
    name="ble_scan",
    title="How many advertising bands one scan process sustains",
    measure=measure,
    figures=_figures(),
    runs=1,
    series=[
        Series("simulated radio CPU", "bands", tuple((n, f"sim_cpu_{n}") for n in FULL_COUNTS)),
        Series("scan CPU", "bands", tuple((n, f"scan_cpu_{n}") for n in FULL_COUNTS)),
    ],
    prose="""
Every band advertises every 100 ms (10/s, the reference of the received rate); 3 s windows after
a 1.5 s warm-up; the bands run in a child process (the simulated radio, as `nymi-sim serve --ble`
serves them) and the scan process is alone, on the path `nymi-band watch` uses. The virtual link
hands an advertisement only to the controllers that listen (the scan's), not to the other
bands, so the radio's cost grows with N (the growth table shows it); the scan's own cost grows
with the report rate. Loaded harder
(`python -m bench.suites.ble_scan --mode tcp --interval-ms 10`), the scan process alone took
about 4,100 reports/s at 58 % of a core (133–192 µs of CPU per advertisement): about 410 bands
at 10/s measured, roughly 540–730 projected for one full core.
""",
)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,25,50,100,200",
                        help="band counts, comma-separated")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--interval-ms", type=float, default=100.0)
    parser.add_argument("--mode", choices=("both", "tcp", "inprocess"), default="both")
    parser.add_argument("--serve", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve is not None:
        asyncio.run(serve(args.serve, args.interval_ms))
    else:
        modes = ["tcp", "inprocess"] if args.mode == "both" else [args.mode]
        asyncio.run(main([int(n) for n in args.counts.split(",")], args.seconds,
                         args.interval_ms, modes))
