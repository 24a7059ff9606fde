"""``nymi-sim serve --all``: every band of a fleet served by one process.

All bands share one radio (HCI over TCP), band i is on CTAPHID-UDP port BASE+i, and every band's
control API is up, so ``nymi-sim`` actions reach the band the daemon holds.
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from nymi_device.transport.udp_hid import open_udp_hid_device
from simulator.control import CONTROL_FILE, daemon_port
from simulator.fleet import Fleet

EXE_DIR = Path(sys.executable).parent
BANDS = (("AAAH-00125", "nymi-band-3.0"), ("ACAK-00056", "nymi-band-3.0"),
         ("REFX-00001", "ctap21-reference"), ("BTWO-00001", "nymi-band-2.0"))


def free_udp_range(count: int) -> int:
    """A base port with ``count`` consecutive free UDP ports on loopback."""
    for _ in range(200):
        base = random.randint(20000, 60000 - count)
        with ExitStack() as stack:
            try:
                for offset in range(count):
                    sock = stack.enter_context(socket.socket(socket.AF_INET, socket.SOCK_DGRAM))
                    sock.bind(("127.0.0.1", base + offset))
            except OSError:
                continue
            return base
    raise RuntimeError(f"no {count} consecutive free UDP ports")


def _sim(sim_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE_DIR / "nymi-sim"), *args, "--sim-dir", str(sim_dir)],
                          capture_output=True, text=True, timeout=60)


@contextmanager
def serve_all(sim_dir: Path, serials: list[str], *extra: str) -> Iterator[subprocess.Popen[str]]:
    process = subprocess.Popen(
        [str(EXE_DIR / "nymi-sim"), "serve", "--all", "--sim-dir", str(sim_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "NO_COLOR": "1"})
    deadline = time.monotonic() + 60
    while any(daemon_port(sim_dir / "bands" / s) is None for s in serials):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            out = process.stdout.read() if process.stdout else ""
            raise RuntimeError(f"nymi-sim serve --all did not start: {out}")
        time.sleep(0.05)
    try:
        yield process
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_every_band_is_served_by_one_process(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    for serial, fixture in BANDS:
        fleet.add_band(fixture, serial)
    fido = [s for s, f in BANDS if f != "nymi-band-2.0"]
    base, peer = free_udp_range(len(fido)), free_udp_range(len(fido))
    with serve_all(fleet.root, [s for s, _ in BANDS], "--ble", "0", "--ctaphid-udp",
                   "--port", str(base), "--peer-port", str(peer), "--auto-presence") as process:
        metas = {s: json.loads((fleet.root / "bands" / s / CONTROL_FILE).read_text())
                 for s, _ in BANDS}
        assert {m["pid"] for m in metas.values()} == {process.pid}
        # Band i (serial order, FIDO bands) on UDP BASE+i, replying to PEER+i.
        for index, serial in enumerate(sorted(fido)):
            assert metas[serial]["ctaphid_udp"] == [base + index, peer + index]
            with open_udp_hid_device(port=base + index, local_port=peer + index) as device:
                assert device.ping(b"fleet") == b"fleet"
        assert "ctaphid_udp" not in metas["BTWO-00001"]  # no FIDO2 authenticator
        # One radio for all: a scan through the one HCI port hears every band.
        monikers = {m["ble"]["moniker"] for m in metas.values()}
        assert len(monikers) == 1
        scanned = subprocess.run(
            [str(EXE_DIR / "nymi-band"), "--sim-dir", str(fleet.root), "--hci", monikers.pop(),
             "scan", "--seconds", "1.5", "--json"], capture_output=True, text=True, timeout=60)
        assert scanned.returncode == 0, scanned.stderr
        assert sorted(b["serial"] for b in json.loads(scanned.stdout)) == sorted(
            s for s, _ in BANDS)
        # The physical world of each band goes to the daemon that holds it.
        removed = _sim(fleet.root, "remove", "ACAK-00056", "--json")
        assert removed.returncode == 0, removed.stderr
        assert json.loads(removed.stdout)["state"]["on_wrist"] is False
        listed = json.loads(_sim(fleet.root, "band", "list", "--json").stdout)
        assert all(row["served"] for row in listed)
    # Stopped: every band's world was saved, the daemon files are gone.
    assert all(daemon_port(fleet.root / "bands" / s) is None for s, _ in BANDS)
    with fleet.open_band("ACAK-00056", save=False) as band:
        assert not band.on_wrist and band.enrollment.value == "enrolled"


def test_serve_all_refuses_a_single_band_option(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    result = _sim(fleet.root, "serve", "--all", "--ble", "0", "--band", "AAAH-00125")
    assert result.returncode != 0
    assert "--all serves every band: --band does not apply" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr
