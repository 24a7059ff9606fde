"""An NES (or a whole site) served over its HTTP API on a free loopback port, in a thread."""

from __future__ import annotations

from simulator.nes import Nes, Site
from simulator.nes.api import create_app, create_site_app
from simulator.nes.served import Served


class ServedNes(Served):
    """``create_app(nes)``, or ``create_site_app(site)``, served by uvicorn until stopped."""

    def __init__(self, served: Nes | Site, *, token_idle_seconds: float = 300.0) -> None:
        super().__init__(create_app(served, token_idle_seconds=token_idle_seconds)
                         if isinstance(served, Nes)
                         else create_site_app(served, token_idle_seconds=token_idle_seconds))
