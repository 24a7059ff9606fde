"""The band tapped on a virtual reader: the vsmartcard ``vpcd`` driver of the system's pcscd.

pcscd loads the vpcd driver (``/etc/reader.conf.d/vpcd``), which listens on TCP 35963 for the
reader "Virtual PCD 00 00" (slot 0) and 35964 for "Virtual PCD 00 01" (slot 1). A virtual card
connects to it; connecting is putting the band on the reader, disconnecting is taking it away.

Wire format, both ways: a 2-byte big-endian length, then that many bytes. From the driver, a
1-byte message is a control: ``00`` power off, ``01`` power on, ``02`` reset (no answer), ``04``
get ATR (answered with the ATR); anything longer is a command APDU, answered with the response
APDU. pcscd asks for the ATR about every 400 ms to see whether the card is still there.

The driver writes the length and the body in two ``send`` calls without ``TCP_NODELAY``, so its
body waits until the length is acknowledged. A card that lets the kernel delay that ACK stalls
every exchange for the delayed-ACK timeout (about 20 exchanges/s). This front end therefore
acknowledges at once (``TCP_QUICKACK`` after every receive, on Linux), disables Nagle on its own
side, reads exactly, and answers each message with a single write of length and body together.

Typical use::

    frontend = VpcdFrontend(card, slot=0)    # card: a CardOS, or anything VpcdCard
    await frontend.tap()                     # returns once pcscd has seen the card
    ...
    await frontend.untap()
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import struct
from concurrent.futures import Future
from typing import Protocol

from nymi_device.errors import BandUnreachableError, UnreachableReason
from nymi_device.protocol import TRAFFIC

__all__ = [
    "DEFAULT_HOST",
    "VPCD_BASE_PORT",
    "VpcdCard",
    "VpcdControl",
    "VpcdFrontend",
    "vpcd_reader_name",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
#: Port of slot 0; slot N listens on VPCD_BASE_PORT + N.
VPCD_BASE_PORT = 35963
_QUICKACK = getattr(socket, "TCP_QUICKACK", None)
_NO_DIAGNOSIS = b"\x6f\x00"


class VpcdControl:
    """The 1-byte control messages of the vpcd protocol."""

    POWER_OFF = 0x00
    POWER_ON = 0x01
    RESET = 0x02
    GET_ATR = 0x04


def vpcd_reader_name(slot: int) -> str:
    """The PC/SC reader name pcscd gives vpcd slot ``slot`` ("Virtual PCD 00 0N")."""
    return f"Virtual PCD 00 {slot:02d}"


class VpcdCard(Protocol):
    """What the front end needs from the card it serves (a :class:`~simulator.band.nfc.CardOS`)."""

    @property
    def atr(self) -> bytes: ...

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def submit(self, apdu: bytes) -> bytes | Future[bytes]:
        """The response APDU, or a future of it when the card needs time."""
        ...


class _QuickAckProtocol(asyncio.StreamReaderProtocol):
    """Stream protocol that acknowledges every received segment at once."""

    _sock: socket.socket | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._sock = sock
            self._quickack()

    def data_received(self, data: bytes) -> None:
        self._quickack()
        super().data_received(data)

    def _quickack(self) -> None:
        if _QUICKACK is not None and self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.setsockopt(socket.IPPROTO_TCP, _QUICKACK, 1)


class VpcdFrontend:
    """One card on one vpcd slot.

    :param card: the card to present (usually the band's :class:`CardOS`).
    :param slot: vpcd slot (0 → port 35963, 1 → 35964, ...).
    :param host: where pcscd's vpcd driver listens.
    :param port: override the port derived from ``slot``.
    """

    def __init__(
        self, card: VpcdCard, *, slot: int = 0, host: str = DEFAULT_HOST, port: int | None = None
    ) -> None:
        if slot < 0:
            raise ValueError(f"vpcd slot must be >= 0, got {slot}")
        self.card = card
        self.slot = slot
        self.host = host
        self.port = port if port is not None else VPCD_BASE_PORT + slot
        self._writer: asyncio.StreamWriter | None = None
        self._task: asyncio.Task[None] | None = None
        self._seen = asyncio.Event()
        self.apdus = 0

    @property
    def reader_name(self) -> str:
        return vpcd_reader_name(self.slot)

    @property
    def tapped(self) -> bool:
        """On the reader: connected to the driver and serving it."""
        return self._task is not None and not self._task.done()

    async def tap(self, *, timeout: float = 5.0) -> None:
        """Put the card on the reader; return once pcscd has asked for its ATR.

        :raises BandUnreachableError: ``NO_ADAPTER`` when no vpcd driver listens on the port
            (pcscd not running, or vsmartcard-vpcd not installed); ``TRANSPORT_FAILED`` when
            the driver never asks for the ATR within ``timeout`` (the slot is taken by another
            virtual card).
        """
        if self.tapped:
            return
        loop = asyncio.get_running_loop()
        reader = asyncio.StreamReader(limit=1 << 17)
        try:
            transport, protocol = await loop.create_connection(
                lambda: _QuickAckProtocol(reader), self.host, self.port)
        except OSError as exc:
            raise BandUnreachableError(
                f"no vpcd reader at {self.host}:{self.port} ({exc.strerror or exc}); is pcscd "
                "running with the vsmartcard-vpcd driver?", UnreachableReason.NO_ADAPTER
            ) from None
        self._writer = asyncio.StreamWriter(transport, protocol, reader, loop)
        self._seen = asyncio.Event()
        self.card.power_on()
        self._task = asyncio.create_task(self._serve(reader, self._writer),
                                         name=f"vpcd-slot{self.slot}")
        try:
            await asyncio.wait_for(self._seen.wait(), timeout)
        except TimeoutError:
            await self.untap()
            raise BandUnreachableError(
                f"the vpcd reader on {self.host}:{self.port} did not pick up the card within "
                f"{timeout:g} s (is another virtual card on slot {self.slot}?)",
                UnreachableReason.TRANSPORT_FAILED) from None
        logger.info("card tapped on %s", self.reader_name)

    async def untap(self) -> None:
        """Take the card off the reader (the driver sees it gone at its next presence poll)."""
        task, self._task = self._task, None
        writer, self._writer = self._writer, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError, ConnectionError):
                await writer.wait_closed()
        self.card.power_off()
        logger.info("card removed from %s", self.reader_name)

    async def __aenter__(self) -> VpcdFrontend:
        await self.tap()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.untap()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        card = self.card
        pack = struct.Struct(">H").pack
        try:
            while True:
                size = int.from_bytes(await reader.readexactly(2), "big")
                message = await reader.readexactly(size)
                if size == 1:
                    control = message[0]
                    if control == VpcdControl.GET_ATR:
                        atr = card.atr
                        writer.write(pack(len(atr)) + atr)
                        self._seen.set()
                    elif control == VpcdControl.POWER_OFF:
                        card.power_off()
                    elif control == VpcdControl.POWER_ON:
                        card.power_on()
                    elif control == VpcdControl.RESET:
                        card.reset()
                    else:
                        logger.debug("vpcd: unknown control %#04x ignored", control)
                    continue
                self.apdus += 1
                logger.log(TRAFFIC, "vpcd slot %d <- %s", self.slot, message.hex())
                answer = card.submit(message)
                if not isinstance(answer, bytes):
                    answer = await asyncio.wrap_future(answer)
                if not answer:
                    answer = _NO_DIAGNOSIS
                logger.log(TRAFFIC, "vpcd slot %d -> %s", self.slot, answer.hex())
                writer.write(pack(len(answer)) + answer)
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            logger.info("vpcd driver closed the connection on slot %d (%s)", self.slot,
                        type(exc).__name__)
            writer.close()
            card.power_off()
