"""Where a served band's memory goes: tracemalloc over ``serve --all`` on the radio.

A child process imports everything, serves one throwaway band (so caches filled on first use are
in place), opens N bands, then takes a tracemalloc snapshot before serving them and another once
they are all on the air. Each allocation still alive is charged to the innermost frame of its
traceback that is neither the event-emitter library (pyee) nor the standard library: the code
that asked for it. The rows are per band (the growth divided by N).
"""

from __future__ import annotations

import linecache
import tracemalloc
from collections import defaultdict
from pathlib import Path

FRAMES = 24
TOP_SITES = 10

#: (path fragment, component), the first that matches the charged frame's file wins.
COMPONENTS: tuple[tuple[str, str], ...] = (
    ("bumble/device.py", "Bumble `Device` (its own state, connection and advertising sets)"),
    ("bumble/host.py", "Bumble `Host` (HCI command and ACL queues)"),
    ("bumble/gatt_server.py", "Bumble GATT server and attribute table"),
    ("bumble/gatt.py", "Bumble GATT server and attribute table"),
    ("bumble/att.py", "Bumble GATT server and attribute table"),
    ("bumble/profiles/", "Bumble GATT server and attribute table"),
    ("bumble/controller.py", "Bumble virtual controller"),
    ("bumble/link.py", "Bumble virtual controller"),
    ("bumble/smp.py", "Bumble security manager, pairing and keys"),
    ("bumble/pairing.py", "Bumble security manager, pairing and keys"),
    ("bumble/keys.py", "Bumble security manager, pairing and keys"),
    ("bumble/l2cap.py", "Bumble L2CAP and SDP"),
    ("bumble/sdp.py", "Bumble L2CAP and SDP"),
    ("bumble/", "Bumble HCI and utilities"),
    ("simulator/frontends/ble_gatt.py", "our GATT services (`ble_gatt.py`)"),
    ("simulator/frontends/", "our radio (`ble.py`, `ble_radio.py`, `hci_bridge.py`)"),
    ("simulator/band/management", "band management service"),
    ("nymi_device/protocol/management", "band management service"),
    ("simulator/control.py", "control API"),
    ("simulator/serve.py", "`serve --all` (per-band records, the ticker)"),
)
STDLIB = "asyncio and the standard library (nothing of ours or Bumble's on the stack)"
PYEE = "/pyee/"


def _is_library(filename: str) -> bool:
    """pyee, the standard library, generated code (dataclass ``__init__``) and frozen modules."""
    if PYEE in filename or filename.startswith("<"):
        return True
    return "/lib/python3" in filename and "site-packages" not in filename


def _component(filename: str) -> str:
    path = filename.replace("\\", "/")
    for fragment, name in COMPONENTS:
        if fragment in path:
            return name
    return "other"


def _short(filename: str) -> str:
    for marker in ("site-packages/", "/simulator/", "/nymi_device/", "/bench/"):
        if marker in filename:
            tail = filename.split(marker, 1)[1]
            return tail if marker == "site-packages/" else marker.strip("/") + "/" + tail
    return Path(filename).name


def analyse(before: tracemalloc.Snapshot, after: tracemalloc.Snapshot,
            count: int) -> dict[str, object]:
    """Per band: KiB and objects by component, of which pyee's, and the top sites."""
    components: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0])
    sites: dict[str, float] = defaultdict(float)
    total = 0.0
    for stat in after.compare_to(before, "traceback"):
        frames = list(reversed(list(stat.traceback)))  # innermost first
        charged = next((f for f in frames if not _is_library(f.filename)), None)
        name = STDLIB if charged is None else _component(charged.filename)
        row = components[name]
        row[0] += stat.size_diff
        row[1] += stat.count_diff
        if frames and PYEE in frames[0].filename:
            row[2] += stat.size_diff
        total += stat.size_diff
        if charged is not None:
            sites[f"{_short(charged.filename)}:{charged.lineno}"] += stat.size_diff
    ordered = sorted(components.items(), key=lambda item: -item[1][0])
    rows = [[name, kib / count / 1024, objects / count, pyee / count / 1024]
            for name, (kib, objects, pyee) in ordered]
    top = sorted(sites.items(), key=lambda item: -item[1])[:TOP_SITES]
    return {"count": count, "total_kib": total / count / 1024, "rows": rows,
            "sites": [[site, size / count / 1024, _source(site)] for site, size in top]}


def _source(site: str) -> str:
    path, _, line = site.rpartition(":")
    for root in Path(__file__).resolve().parents[2], *map(Path, __import__("sys").path):
        candidate = Path(root) / path
        if candidate.is_file():
            return linecache.getline(str(candidate), int(line)).strip()
    return ""


def trace_child(count: int, sim_dir: Path) -> dict[str, object]:
    """Serve one throwaway band, then ``count`` bands on the radio under tracemalloc."""
    from bench.suites.serve_all import _import_serving, _serve
    from simulator.serve import raise_open_file_limit

    raise_open_file_limit()
    _import_serving()
    _serve(1, sim_dir / "warm-up", ble=True)
    snapshots: list[tracemalloc.Snapshot] = []

    def sample() -> None:
        if not snapshots:
            tracemalloc.start(FRAMES)
        snapshots.append(tracemalloc.take_snapshot())

    _serve(count, sim_dir / "traced", ble=True, sample=sample)
    tracemalloc.stop()
    return analyse(snapshots[0], snapshots[1], count)


def report(traced: dict[str, object], marginal: dict[int, float]) -> str:
    """The profile for ``docs/benchmarks.md``: the table, the top sites, and why."""
    count = traced["count"]
    rows = traced["rows"]
    sites = traced["sites"]
    assert isinstance(rows, list) and isinstance(sites, list)
    rss = ", ".join(f"{kib:.0f} KiB at {n} bands" for n, kib in sorted(marginal.items()))
    lines = [
        f"tracemalloc over {count} Nymi Band 3.0 bands served on the radio (the growth from "
        "opened to on the air, per band; each allocation charged to the innermost frame that "
        "is neither pyee nor the standard library). The resident-memory figure of the same "
        f"suite, per additional band: {rss}.", "",
        "| component | KiB per band | objects per band | of which pyee event emitters, KiB |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {name} | {kib:.1f} | {objects:.0f} | {pyee:.1f} |"
              for name, kib, objects, pyee in rows if abs(kib) >= 0.05]
    lines += [f"| **traced in all** | **{traced['total_kib']:.1f}** | | |", "",
              "The largest allocation sites (KiB per band):", "",
              "| site | KiB | line |", "|---|---:|---|"]
    lines += [f"| `{site}` | {kib:.1f} | `{text}` |" for site, kib, text in sites]
    lines += ["", WHY]
    return "\n".join(lines)


WHY = """\
Why. Every band on the air is a whole Bumble stack: a `Device` with its `Host` (HCI command and
ACL queues), a GATT server holding the band's services (device information, battery, band
management, FIDO) and Bumble's default GAP and GATT services, a security manager, an L2CAP
channel manager, an SDP server, and a virtual controller on the shared link. Bumble makes
nearly each of these objects an event emitter (pyee), and each emitter carries a listener dict,
a lock and a set of pending futures even when nothing listens; every GATT attribute is one,
which is most of the attribute table's share. The gap between the traced figure and the
resident one is the allocator's overhead (pymalloc pools and arenas, malloc headers) and
memory tracemalloc does not see.

What was cut, with the same behaviour (each band keeps its own address, GATT database and
pairing): a `Device` subscribes a bound method to each of its host's ~60 events, and pyee kept
an ordered dict per event for that, about 30 KiB per band; the band's host is now a
`DeviceHost` (`simulator/frontends/ble_radio.py`) that calls the device's `on_<event>` handlers
directly, ahead of any other listener as before. The simulated link handed every advertisement
to every controller, so each band's controller received every other band's advertisements (N²
scheduled callbacks, each holding the packet: 7 KiB per band at 50 bands and growing with the
fleet, and the reason 1,000 bands could not come up); the link now hands them only to
controllers that listen (a host scanning or connecting). The battery re-read is a timer rather
than a task per band. Measured the same way (growth from 1 to N bands), a served band on the
radio went from 96, 103 and 120 KiB at 10, 50 and 150 bands to about 70, 75 and 80 KiB. What is
left is Bumble's one-object-graph-per-device design; cutting more would mean sharing Bumble's
attribute and emitter objects between bands."""
