"""A management client and server back to back, over two asyncio queues standing in for GATT.

``to_band`` carries what the host writes to Management Request, ``to_host`` what the band
notifies on Management Notify. Tests can watch every fragment (``written``, ``notified``), hold
or rewrite fragments in flight (``tap_to_band``, ``tap_to_host``) and inject their own.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from types import TracebackType

from cryptography import x509
from hypothesis import strategies as st

from nymi_device.management_client import ManagementClient
from nymi_device.protocol.management import (
    Record,
    Request,
    Response,
    decode_message,
    encode_message,
)
from nymi_device.protocol.management_frames import Reassembler, fragment_message
from nymi_device.protocol.model import EventKind
from simulator.band.band import EmulatedBand
from simulator.band.management_identity import simulation_root
from simulator.band.management_server import ManagementServer

#: Rewrites one fragment in flight into the fragments to deliver instead (none = dropped).
Tap = Callable[[bytes], list[bytes]]


class GattLoopback:
    def __init__(
        self,
        band: EmulatedBand,
        *,
        mtu: int = 23,
        trusted_ca: x509.Certificate | None = None,
        server: ManagementServer | None = None,
        timeout: float = 2.0,
    ) -> None:
        self.band = band
        self.to_band: asyncio.Queue[bytes] = asyncio.Queue()
        self.to_host: asyncio.Queue[bytes] = asyncio.Queue()
        self.written: list[bytes] = []
        self.notified: list[bytes] = []
        self.tap_to_band: Tap | None = None
        self.tap_to_host: Tap | None = None
        self.server = server or ManagementServer.for_band(band, mtu=mtu)
        self.server.on_pending = self._pending
        self.client = ManagementClient(self.write, trusted_ca or simulation_root(), mtu,
                                       timeout=timeout)
        self._tasks: list[asyncio.Task[None]] = []

    async def __aenter__(self) -> GattLoopback:
        self._tasks = [asyncio.create_task(self._band_side()),
                       asyncio.create_task(self._host_side())]
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.server.close()

    async def write(self, fragment: bytes) -> None:
        """What the host writes to Management Request."""
        await self.to_band.put(fragment)

    def _pending(self) -> None:
        for fragment in self.server.take_pending():
            self.to_host.put_nowait(fragment)

    async def _band_side(self) -> None:
        while True:
            fragment = await self.to_band.get()
            self.written.append(fragment)
            for delivered in self.tap_to_band(fragment) if self.tap_to_band else [fragment]:
                for out in self.server.receive(delivered):
                    self.to_host.put_nowait(out)
            self.to_band.task_done()

    async def _host_side(self) -> None:
        while True:
            fragment = await self.to_host.get()
            self.notified.append(fragment)
            for delivered in self.tap_to_host(fragment) if self.tap_to_host else [fragment]:
                self.client.feed(delivered)
            self.to_host.task_done()

    async def inject_to_band(self, fragment: bytes) -> None:
        """Deliver ``fragment`` to the band as if the host had written it, and let it settle."""
        await self.to_band.put(fragment)
        await self.drain()

    async def drain(self) -> None:
        """Wait until every fragment in flight in either direction has been delivered."""
        for _ in range(4):
            await self.to_band.join()
            await self.to_host.join()
            await asyncio.sleep(0)


class MessageTap:
    """A tap that collects ``count`` whole messages passing by, then delivers ``rewrite(them)``
    instead, once; later fragments pass unchanged. Whole messages are told apart by the
    LENGTH of their first fragment (docs/protocol.md §4)."""

    def __init__(self, count: int, rewrite: Callable[[list[list[bytes]]], list[bytes]]) -> None:
        self.count = count
        self.rewrite = rewrite
        self.done = False
        self._messages: list[list[bytes]] = []
        self._current: list[bytes] = []
        self._remaining = 0

    def __call__(self, fragment: bytes) -> list[bytes]:
        if self.done:
            return [fragment]
        if fragment[1] == 0:
            self._current = [fragment]
            self._remaining = int.from_bytes(fragment[2:4], "big") - (len(fragment) - 4)
        else:
            self._current.append(fragment)
            self._remaining -= len(fragment) - 2
        if self._remaining > 0:
            return []
        self._messages.append(self._current)
        if len(self._messages) < self.count:
            return []
        self.done = True
        return self.rewrite(self._messages)


def plain_request(command: int, body: dict[int, object] | None = None, request_id: int = 1,
                  number: int = 0) -> list[bytes]:
    """The fragments (MTU 23) of a plain request, as a host would write them."""
    return fragment_message(encode_message(Request(request_id, command, body or {})), number, 23)


def responses(fragments: list[bytes]) -> list[Response | Record]:
    """The messages in a band's notification fragments; each must be a response or a record."""
    reassembler = Reassembler()
    out: list[Response | Record] = []
    for fragment in fragments:
        for item in reassembler.push(fragment):
            assert isinstance(item, bytes)
            message = decode_message(item)
            assert isinstance(message, Response | Record)
            out.append(message)
    return out


def refused_events(band: EmulatedBand) -> int:
    return sum(1 for e in band.events if e.kind == EventKind.REFUSED)


#: Fragments a broken or hostile peer might write: noise, plausible headers, plain requests.
arbitrary_fragments = st.lists(
    st.one_of(
        st.binary(max_size=24),
        st.builds(lambda n, i, rest: bytes([n, i]) + rest, st.integers(0, 2), st.integers(0, 2),
                  st.binary(max_size=18)),
        st.builds(lambda n, length, rest: bytes([n, 0]) + length.to_bytes(2, "big") + rest,
                  st.integers(0, 2), st.integers(0, 5000), st.binary(max_size=16)),
        st.builds(lambda cmd, body: plain_request(cmd, body)[0], st.integers(0, 0x40),
                  st.dictionaries(st.integers(0, 8), st.integers(-(2**63), 2**63) | st.text(max_size=4),
                                  max_size=3)),
    ),
    max_size=12,
)
