"""Running ``nymi-sim serve`` as a separate process for end-to-end tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from simulator.control import daemon_port

EXE_DIR = Path(sys.executable).parent


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Served:
    serial: str
    sim_dir: Path
    port: int
    peer_port: int
    process: subprocess.Popen[str]

    @property
    def target(self) -> str:
        return f"udp:127.0.0.1:{self.port}"

    def sim(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run ``nymi-sim`` against this fleet (routed to the daemon for the served band)."""
        return subprocess.run([str(EXE_DIR / "nymi-sim"), *args, "--sim-dir", str(self.sim_dir)],
                              capture_output=True, text=True, timeout=60)


@contextmanager
def serve(sim_dir: Path, serial: str, *extra: str,
          ports: tuple[int, int] | None = None, ctaphid: bool = True) -> Iterator[Served]:
    """``nymi-sim serve --band SERIAL`` with CTAPHID over UDP on free ports (unless
    ``ctaphid=False``) and the ``extra`` front ends."""
    port, peer = ports or (free_udp_port(), free_udp_port())
    udp = ["--ctaphid-udp", "--port", str(port), "--peer-port", str(peer)] if ctaphid else []
    process = subprocess.Popen(
        [str(EXE_DIR / "nymi-sim"), "serve", *udp, "--band", serial,
         "--sim-dir", str(sim_dir), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "NO_COLOR": "1"})
    band_dir = sim_dir / "bands" / serial
    deadline = time.monotonic() + 30
    while daemon_port(band_dir) is None:
        if process.poll() is not None or time.monotonic() > deadline:
            out = process.stdout.read() if process.stdout else ""
            process.kill()
            raise RuntimeError(f"nymi-sim serve did not start: {out}")
        time.sleep(0.02)
    try:
        yield Served(serial, sim_dir, port, peer, process)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
