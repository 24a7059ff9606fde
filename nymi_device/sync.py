"""The one bridge for synchronous callers: a private event loop on a worker thread.

:class:`LoopThread` is the bridge itself (every sync-over-async call in the stack goes through
one); :class:`SyncBand` is the :class:`~nymi_device.band.Band` facade on top of it, for code that
is not async (the host flows, python-fido2 style scripts, ``SyncBand("sim:AAAH-00125")``).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeVar

from nymi_device.band import Band
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.model import AuthState, BandEvent, BandInfo, BandStatus

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

    from nymi_device.backend import Feature

T = TypeVar("T")

__all__ = ["LoopThread", "SyncBand"]


class LoopThread:
    """A private asyncio event loop running on a daemon thread.

    :meth:`run` submits a coroutine and blocks until it finishes, re-raising its exception.
    Calling :meth:`run` from the loop's own thread would deadlock, so it refuses.
    """

    def __init__(self, name: str = "nymi-loop",
                 loop: asyncio.AbstractEventLoop | None = None) -> None:
        #: Whether this bridge runs (and stops) its loop, or borrows one running elsewhere.
        self.owned = loop is None
        self.loop = loop if loop is not None else asyncio.new_event_loop()
        self._thread: threading.Thread | None = None
        if self.owned:
            self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                            name=name)
            self._thread.start()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Schedule ``coro`` on the loop; the caller waits on the returned future."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop)

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop and wait for its result."""
        if self.on_loop_thread():
            coro.close()
            raise RuntimeError("a blocking call was made on its own event loop's thread; "
                               "call it from another thread (or await the async API)")
        return self.submit(coro).result()

    def on_loop_thread(self) -> bool:
        if self._thread is not None:
            # By thread identity: under gevent (Locust) all "threads" share one OS thread and
            # asyncio's notion of the running loop with it.
            return threading.current_thread() is self._thread
        try:
            return asyncio.get_running_loop() is self.loop
        except RuntimeError:
            return False

    def stop(self) -> None:
        """Stop the loop and its thread (idempotent); a borrowed loop is left running."""
        if not self.owned or self.loop.is_closed() or self._thread is None:
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class SyncBand:
    """``Band`` for code that is not async: every call blocks until the band answers.

    ``SyncBand("sim:AAAH-00125")`` opens a band by target (options as keyword arguments);
    ``SyncBand(band=Band(backend))`` wraps a facade (connecting it). With ``loop``, the calls
    run on that event loop (running on another thread, e.g. where a connection already lives)
    instead of a private one. Use it as a context manager, or call :meth:`close`.
    """

    def __init__(self, target: str | None = None, *, band: Band | None = None,
                 loop: asyncio.AbstractEventLoop | None = None, **options: Any) -> None:
        if (target is None) == (band is None):
            raise TypeError("SyncBand needs a target or a band, not both")
        self._bridge = LoopThread("nymi-band-sync", loop)
        try:
            if band is None:
                assert target is not None
                band = Band.from_target(target, **options)
            self._band = band
            self._run(band.backend.connect())
        except BaseException:
            self._bridge.stop()
            raise

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._bridge.run(coro)

    @property
    def band(self) -> Band:
        """The async facade (for use on :attr:`loop` only)."""
        return self._band

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        return self._bridge.loop

    @property
    def backend_id(self) -> str:
        return self._band.backend_id

    @property
    def features(self) -> frozenset[Feature]:
        return self._band.features

    # -- identity, state, events -----------------------------------------------------------
    def info(self) -> BandInfo:
        return self._run(self._band.info())

    def status(self) -> BandStatus:
        return self._run(self._band.status())

    def recent_events(self, last: int = 20) -> list[BandEvent]:
        return self._run(self._band.recent_events(last))

    def event_mark(self) -> int:
        return self._run(self._band.event_mark())

    def events_since(self, mark: int) -> tuple[list[BandEvent], int]:
        return self._run(self._band.events_since(mark))

    # -- the enrollment channel --------------------------------------------------------------
    def enter_setup_code(self, code: str) -> None:
        self._run(self._band.enter_setup_code(code))

    def start_capture(self) -> int:
        return self._run(self._band.start_capture())

    def set_label(self, label: str | None) -> str | None:
        return self._run(self._band.set_label(label))

    def add_corporate_authenticator(self) -> None:
        self._run(self._band.add_corporate_authenticator())

    def apply_policy(self, policy: PolicySettings) -> None:
        self._run(self._band.apply_policy(policy))

    def update_policy(self, policy: PolicySettings) -> None:
        self._run(self._band.update_policy(policy))

    def corporate_login(self, accepted: bool = True) -> AuthState:
        return self._run(self._band.corporate_login(accepted))

    # -- FIDO2 ---------------------------------------------------------------------------------
    def fido2_device(self) -> CtapDevice:
        """The band's authenticator as a python-fido2 device (close it when done)."""
        return self._run(self._band.fido2_device())

    # -- lifetime ------------------------------------------------------------------------------
    def close(self) -> None:
        try:
            self._run(self._band.close())
        finally:
            self._bridge.stop()

    def __enter__(self) -> SyncBand:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
