"""The ``Band`` facade: one object for one band, whatever reaches it.

``Band.open("sim:AAAH-00125")`` picks the backend by the target's scheme; ``Band(backend)``
takes an injected one. The API is asyncio-native; synchronous callers use
:class:`nymi_device.sync.SyncBand`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any

from nymi_device.backend import BandBackend, backend_class, parse_target
from nymi_device.protocol.model import BandEvent, BandInfo, BandStatus


class Band:
    """A band reached through a :class:`~nymi_device.backend.BandBackend`."""

    def __init__(self, backend: BandBackend) -> None:
        self.backend = backend

    @classmethod
    def from_target(cls, target: str, **options: Any) -> Band:
        scheme, address = parse_target(target)
        return cls(backend_class(scheme).from_address(address, options))

    @classmethod
    async def open(cls, target: str, options: Mapping[str, Any] | None = None) -> Band:
        band = cls.from_target(target, **dict(options or {}))
        await band.backend.connect()
        return band

    @property
    def backend_id(self) -> str:
        return self.backend.backend_id

    async def info(self) -> BandInfo:
        return await self.backend.info()

    async def status(self) -> BandStatus:
        return await self.backend.status()

    async def recent_events(self, last: int = 20) -> list[BandEvent]:
        return await self.backend.recent_events(last)

    def events(self) -> AsyncIterator[BandEvent]:
        return self.backend.events()

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> Band:
        await self.backend.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
