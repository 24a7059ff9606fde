"""The ``sim:SERIAL`` backend: a band of the fleet directory, reached in-process."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

from nymi_device.backend import BandBackend
from nymi_device.errors import BandUnreachableError, UnknownBandError, UnreachableReason
from nymi_device.protocol.model import BandEvent, BandInfo, BandStatus
from simulator.control import daemon_port, send_action
from simulator.fleet import Fleet, check_serial, default_sim_dir


class SimBackend(BandBackend):
    """Reads a simulated band's state from its fleet directory; changes nothing."""

    scheme = "sim"

    def __init__(self, serial: str, sim_dir: Path) -> None:
        self.serial = check_serial(serial)
        self.fleet = Fleet(sim_dir)

    @classmethod
    def from_address(cls, address: str, options: Mapping[str, Any]) -> SimBackend:
        sim_dir = options.get("sim_dir")
        return cls(address, Path(sim_dir) if sim_dir else default_sim_dir())

    @property
    def backend_id(self) -> str:
        return f"sim:{self.serial} ({self.fleet.root})"

    async def connect(self) -> None:
        try:
            self.fleet.band_dir(self.serial)
        except UnknownBandError as exc:
            raise BandUnreachableError(str(exc), UnreachableReason.NOT_FOUND) from None

    async def close(self) -> None:
        return None

    def _daemon(self) -> int | None:
        return daemon_port(self.fleet.band_dir(self.serial))

    async def info(self) -> BandInfo:
        port = self._daemon()
        if port is not None:
            return BandInfo.from_dict(send_action(port, "info")["info"])
        with self.fleet.open_band(self.serial, save=False) as band:
            return band.info()

    async def status(self) -> BandStatus:
        port = self._daemon()
        if port is not None:
            return BandStatus.from_dict(send_action(port, "status")["state"])
        with self.fleet.open_band(self.serial, save=False) as band:
            return band.status()

    async def recent_events(self, last: int = 20) -> list[BandEvent]:
        return self.fleet.event_log(self.serial, last)

    async def events(self) -> AsyncIterator[BandEvent]:
        """New events as other processes (``nymi-sim``) append them to the band's log."""
        seen = len(self.fleet.event_log(self.serial))
        while True:
            log = self.fleet.event_log(self.serial)
            for event in log[seen:]:
                yield event
            seen = len(log)
            await asyncio.sleep(0.2)
