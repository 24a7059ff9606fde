"""Small authenticators and a raw UDP client for the CTAPHID front-end tests.

The authenticators implement only what the CTAPHID layer needs (echo, keepalives, cancellation);
the end-to-end tests use the real CTAP 2.1 authenticator.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import cbor2

from nymi_device.protocol.ctaphid import (
    CONT_DATA_SIZE,
    REPORT_SIZE,
    TYPE_INIT,
    Command,
    InitPacket,
    decode_packet,
)
from simulator.frontends.ctaphid_udp import CtapHidAuthenticator, CtapHidUdpServer

KEEPALIVE_CANCEL = 0x2D


class EchoAuthenticator:
    """CBOR answers ``00 || request``; U2F answers ``apdu || 9000``; winks are counted."""

    def __init__(self) -> None:
        self.power_cycles = 0
        self.winks = 0
        self.cbor_threads: list[str] = []

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes:
        self.cbor_threads.append(threading.current_thread().name)
        return b"\x00" + request

    def process_u2f(self, apdu: bytes) -> bytes:
        return apdu + b"\x90\x00"

    def power_cycle(self) -> None:
        self.power_cycles += 1

    def wink(self) -> None:
        self.winks += 1


class NoWinkAuthenticator:
    """A CTAP2-only authenticator (getInfo without U2F_V2, maxMsgSize 1200) that cannot wink."""

    MAX_MSG_SIZE = 1200

    def __init__(self) -> None:
        self.power_cycles = 0

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes:
        if request[:1] == b"\x04":
            return b"\x00" + cbor2.dumps({1: ["FIDO_2_0", "FIDO_2_1"], 5: self.MAX_MSG_SIZE})
        return b"\x00"

    def process_u2f(self, apdu: bytes) -> bytes:
        raise AssertionError("MSG must not reach a CTAP2-only authenticator")

    def power_cycle(self) -> None:
        self.power_cycles += 1


class SlowAuthenticator(EchoAuthenticator):
    """CBOR requests take ``duration`` seconds: PROCESSING first, then UPNEEDED after
    ``up_after`` seconds; a cancel ends them with CTAP2_ERR_KEEPALIVE_CANCEL."""

    def __init__(self, duration: float = 1.0, up_after: float = 0.15) -> None:
        super().__init__()
        self.duration = duration
        self.up_after = up_after
        self.started = threading.Event()
        self.finished = threading.Event()
        self.cancelled = threading.Event()

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes:
        if request[:1] == b"\x04":  # the front end's getInfo probe
            return b"\x01"
        self.started.set()
        cancel = cancel or threading.Event()
        if keepalive:
            keepalive(1)
        try:
            if cancel.wait(self.up_after):
                self.cancelled.set()
                return bytes([KEEPALIVE_CANCEL])
            if keepalive:
                keepalive(2)
            if cancel.wait(self.duration - self.up_after):
                self.cancelled.set()
                return bytes([KEEPALIVE_CANCEL])
            return b"\x00" + request
        finally:
            self.finished.set()


def init_report(cid: int, cmd: int, bcnt: int, data: bytes = b"") -> bytes:
    """A raw initialisation report; ``bcnt`` may disagree with ``data`` on purpose."""
    return (struct.pack(">IBH", cid, TYPE_INIT | cmd, bcnt) + data).ljust(REPORT_SIZE, b"\0")[
        :REPORT_SIZE
    ]


def cont_report(cid: int, seq: int, data: bytes = b"") -> bytes:
    return (struct.pack(">IB", cid, seq) + data).ljust(REPORT_SIZE, b"\0")[:REPORT_SIZE]


def error_bytes(cid: int, code: int) -> bytes:
    """The exact report of a CTAPHID_ERROR: channel, 0xBF, length 1, code, zero padding."""
    return struct.pack(">IBHB", cid, 0xBF, 1, code).ljust(REPORT_SIZE, b"\0")


class RawHidClient(asyncio.DatagramProtocol):
    """A host that speaks raw CTAPHID reports over UDP, for byte-for-byte tests."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((time.monotonic(), data))

    def send(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.sendto(data)

    async def recv(self, timeout: float = 1.0) -> bytes:
        return (await self.recv_timed(timeout))[1]

    async def recv_timed(self, timeout: float = 1.0) -> tuple[float, bytes]:
        return await asyncio.wait_for(self.queue.get(), timeout)

    async def silence(self, duration: float = 0.2) -> bool:
        """True if nothing arrives for ``duration`` seconds."""
        try:
            data = await self.recv(duration)
        except TimeoutError:
            return True
        raise AssertionError(f"expected silence, got {data.hex()}")

    async def recv_message(self, cid: int, timeout: float = 1.0) -> tuple[int, bytes]:
        """Reassemble one message on ``cid``, skipping keepalives; return (cmd, payload)."""
        while True:
            packet = decode_packet(await self.recv(timeout))
            assert packet.cid == cid, f"report on channel {packet.cid:08x}, expected {cid:08x}"
            assert isinstance(packet, InitPacket), "expected an initialisation packet"
            if packet.cmd != Command.KEEPALIVE:
                break
        payload = bytearray(packet.payload)
        seq = 0
        while len(payload) < packet.bcnt:
            cont = decode_packet(await self.recv(timeout))
            assert not isinstance(cont, InitPacket) and cont.seq == seq and cont.cid == cid
            payload += cont.data[: min(CONT_DATA_SIZE, packet.bcnt - len(payload))]
            seq += 1
        return packet.cmd, bytes(payload)

    async def init(self, nonce: bytes = b"12345678") -> int:
        """Allocate a channel with a broadcast INIT; return it."""
        self.send(init_report(0xFFFFFFFF, Command.INIT, 8, nonce))
        cmd, payload = await self.recv_message(0xFFFFFFFF)
        assert cmd == Command.INIT and payload[:8] == nonce
        return int.from_bytes(payload[8:12], "big")


@contextlib.asynccontextmanager
async def raw_client(
    server_address: tuple[str, int], local: tuple[str, int] = ("127.0.0.1", 0)
) -> AsyncIterator[RawHidClient]:
    loop = asyncio.get_running_loop()
    transport, client = await loop.create_datagram_endpoint(
        RawHidClient, local_addr=local, remote_addr=server_address
    )
    client.transport = transport
    try:
        yield client
    finally:
        transport.close()


@contextlib.asynccontextmanager
async def served(
    authenticator: CtapHidAuthenticator, **options: Any
) -> AsyncIterator[CtapHidUdpServer]:
    """A server on an ephemeral port that answers each sender (no fixed peer port)."""
    options.setdefault("port", 0)
    options.setdefault("peer", None)
    server = CtapHidUdpServer(authenticator, **options)
    await server.start()
    try:
        yield server
    finally:
        await server.close()


async def eventually(predicate: Callable[[], bool], timeout: float = 1.0) -> bool:
    """Poll ``predicate`` until it holds (True) or ``timeout`` seconds pass (False)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.005)
    return True
