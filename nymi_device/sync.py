"""The one bridge for synchronous callers: a private event loop on a worker thread."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

from nymi_device.band import Band
from nymi_device.protocol.model import BandEvent, BandInfo, BandStatus

T = TypeVar("T")


class SyncBand:
    """``Band`` for code that is not async: every call blocks until the band answers."""

    def __init__(self, target: str, **options: Any) -> None:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name="nymi-band-sync")
        self._thread.start()
        try:
            self._band = self._run(Band.open(target, options))
        except BaseException:
            self._stop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    def info(self) -> BandInfo:
        return self._run(self._band.info())

    def status(self) -> BandStatus:
        return self._run(self._band.status())

    def recent_events(self, last: int = 20) -> list[BandEvent]:
        return self._run(self._band.recent_events(last))

    def close(self) -> None:
        try:
            self._run(self._band.close())
        finally:
            self._stop()

    def _stop(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)
        self._loop.close()

    def __enter__(self) -> SyncBand:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
