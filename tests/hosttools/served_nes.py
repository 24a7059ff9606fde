"""An NES HTTP API served by uvicorn on an ephemeral loopback port, in a background thread."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from simulator.nes import Nes, Site
from simulator.nes.api import create_app, create_site_app


class ServedNes:
    """``create_app(nes)`` (or ``create_site_app(site)``) on ``127.0.0.1:<free port>``."""

    def __init__(self, served: Nes | Site, *, token_idle_seconds: float = 300.0) -> None:
        app = (create_app(served, token_idle_seconds=token_idle_seconds)
               if isinstance(served, Nes)
               else create_site_app(served, token_idle_seconds=token_idle_seconds))
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off",
                                                    access_log=False))
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]},
                                       daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "uvicorn did not start"
            time.sleep(0.01)

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
