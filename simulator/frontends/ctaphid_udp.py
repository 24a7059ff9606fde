"""CTAPHID over UDP: the band's USB-HID FIDO interface, one 64-byte report per datagram.

This is the contract of the public FIDO2 simulator test tooling: the authenticator binds UDP
127.0.0.1:8111, and the host sends its reports from 127.0.0.1:7112, where it receives the
answers; each datagram is exactly one CTAPHID report without a report id. Datagrams of any other
length are ignored. The 64-byte :data:`~nymi_device.protocol.ctaphid.REBOOT_DATAGRAM`
power-cycles the band (the whole band, through the authenticator) and gets no reply.

Every answer goes to the sender of the datagram it answers: a reply to the address the request
came from, keepalives and the result of a running request to the sender of that request. A host
following the contract therefore gets its answers on 7112, and another process sending to the
same port gets its own answers and never sees the first host's. ``peer`` pins one address for
every report instead, for a host that sends from one port and listens on another.

Typical use::

    server = await serve_ctaphid_udp(authenticator)        # 127.0.0.1:8111, answers each sender
    ...
    server.power_cycle()                                   # from the control API
    await server.close()

Channel handling lives in the pure :class:`~simulator.frontends.ctaphid.CtapHidChannels`; this
module adds the socket, the timers (message timeout, keepalives every ``keepalive_interval``) and
runs authenticator calls on one worker thread so the event loop stays free to receive CANCEL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import cbor2

from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.ctaphid import (
    MAX_MESSAGE_SIZE,
    REBOOT_DATAGRAM,
    REPORT_SIZE,
    Capability,
    Command,
    HidErrorCode,
    KeepaliveStatus,
    encode_message,
    error_report,
    keepalive_report,
)
from simulator.frontends.ctaphid import (
    DEFAULT_MSG_TIMEOUT,
    Action,
    Cancel,
    CtapHidChannels,
    Dispatch,
    Reply,
)

__all__ = [
    "DEFAULT_HOST",
    "DEFAULT_KEEPALIVE_INTERVAL",
    "DEFAULT_PEER",
    "DEFAULT_PORT",
    "CtapHidAuthenticator",
    "CtapHidUdpServer",
    "SupportsWink",
    "serve_ctaphid_udp",
]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8111
#: The port the public tooling sends from and listens on (its answers go there because it sends
#: from there; pass it as ``peer`` only for a host that listens there but sends from elsewhere).
DEFAULT_PEER: tuple[str, int] = ("127.0.0.1", 7112)
#: Seconds between keepalives while a CBOR request runs; CTAP 2.1 §11.2.9.1.7 wants <= 100 ms.
DEFAULT_KEEPALIVE_INTERVAL = 0.05

_GET_INFO = b"\x04"
_CTAP2_OK = 0x00
_CTAP2_DEFAULT_MAX_MSG_SIZE = 1024  # getInfo maxMsgSize when the authenticator omits it

Address = tuple[str, int]


class CtapHidAuthenticator(Protocol):
    """What the CTAPHID front end needs from an authenticator."""

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes:
        """Run one CTAP2 request (command byte + CBOR); return status byte + CBOR.

        Called in a worker thread. ``cancel`` is set when the host sends CTAPHID_CANCEL or the
        request is aborted; ``keepalive`` reports 1 (PROCESSING) or 2 (UPNEEDED).
        """
        ...

    def process_u2f(self, apdu: bytes) -> bytes:
        """Run one U2F (CTAP1) APDU; return response data + status word."""
        ...

    def power_cycle(self) -> None:
        """Cut the band's power for an instant: the band's RAM is lost, not only the interface's."""
        ...


@runtime_checkable
class SupportsWink(Protocol):
    """An authenticator that can identify itself physically (CTAPHID_WINK).

    An optional ``can_wink`` attribute (false: no vibration motor) withholds CAPABILITY_WINK.
    """

    def wink(self) -> None: ...


@dataclass
class _Request:
    token: int
    cid: int
    addr: Address | None
    cancel: threading.Event = field(default_factory=threading.Event)
    status: int = KeepaliveStatus.PROCESSING
    discard: bool = False
    keepalive: asyncio.TimerHandle | None = None


class _DatagramProtocol(asyncio.DatagramProtocol):
    def __init__(self, server: CtapHidUdpServer) -> None:
        self._server = server

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._server._on_datagram(data, addr)

    def error_received(self, exc: Exception) -> None:
        # Typically ICMP port-unreachable: nobody listens on the peer port yet.
        logger.debug("UDP error: %s", exc)


class CtapHidUdpServer:
    """A CTAPHID authenticator front end on a UDP socket.

    :param authenticator: the band's authenticator (:class:`CtapHidAuthenticator`).
    :param host: address to bind.
    :param port: UDP port to bind; 0 picks a free port (see :attr:`address`).
    :param peer: where every report is sent. ``None`` (the default) answers each datagram's
        sender: replies where the request came from, a running request's keepalives and result
        where that request came from.
    :param msg_timeout: seconds a half-received message may stall before ERR_MSG_TIMEOUT.
    :param keepalive_interval: seconds between keepalives while a CBOR request runs.
    :param capabilities: INIT capability flags; by default derived from the authenticator
        (CBOR always, WINK if it has ``wink()``, NMSG if getInfo does not list ``U2F_V2``).
    :param max_msg_size: largest MSG/CBOR request; by default getInfo's maxMsgSize.
    :param device_version: (major, minor, build) reported by INIT.
    """

    def __init__(
        self,
        authenticator: CtapHidAuthenticator,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        peer: Address | None = None,
        msg_timeout: float = DEFAULT_MSG_TIMEOUT,
        keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
        capabilities: Capability | None = None,
        max_msg_size: int | None = None,
        device_version: tuple[int, int, int] = (1, 0, 0),
    ) -> None:
        self.authenticator = authenticator
        self._bind: Address = (host, port)
        self.peer = peer
        self.keepalive_interval = keepalive_interval
        self._capabilities = capabilities
        self._max_msg_size = max_msg_size
        self.channels = CtapHidChannels(
            capabilities=Capability.CBOR if capabilities is None else capabilities,
            device_version=device_version,
            max_msg_size=MAX_MESSAGE_SIZE if max_msg_size is None else max_msg_size,
            msg_timeout=msg_timeout,
        )
        self._loop: asyncio.AbstractEventLoop | None = None
        self._transport: asyncio.DatagramTransport | None = None
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._requests: dict[int, _Request] = {}
        self._reply_to: dict[int, Address] = {}
        #: The sender of the datagram being handled (its synchronous replies go there).
        self._sender: Address | None = None
        self._timer: asyncio.TimerHandle | None = None
        #: How many power cycles the band went through (reboot datagram or :meth:`power_cycle`).
        self.power_cycles = 0

    # ------------------------------------------------------------------ lifecycle

    @property
    def address(self) -> Address:
        """The (host, port) actually bound; valid after :meth:`start`."""
        if self._transport is None:
            return self._bind
        host, port = self._transport.get_extra_info("sockname")[:2]
        return (str(host), int(port))

    @property
    def serving(self) -> bool:
        return self._transport is not None

    async def start(self) -> None:
        """Probe the authenticator (getInfo) and bind the socket.

        :raises OSError: if the address cannot be bound (e.g. the port is in use).
        """
        if self._transport is not None:
            return
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="ctaphid-udp"
        )
        try:
            if self._capabilities is None or self._max_msg_size is None:
                await self._probe_authenticator()
            transport, _ = await self._loop.create_datagram_endpoint(
                lambda: _DatagramProtocol(self), local_addr=self._bind
            )
        except BaseException:
            self._executor.shutdown(wait=False)
            self._executor = None
            raise
        self._transport = transport
        logger.info(
            "CTAPHID over UDP on %s:%d, reports to %s",
            *self.address,
            f"{self.peer[0]}:{self.peer[1]}" if self.peer else "each sender",
        )

    async def close(self) -> None:
        """Stop serving; running requests are cancelled and their responses dropped."""
        self._abort_all()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
            await asyncio.sleep(0)  # the socket itself closes on the next loop iteration
        for request in self._requests.values():
            if request.keepalive is not None:
                request.keepalive.cancel()
        self._requests.clear()
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
            self._executor = None

    async def __aenter__(self) -> CtapHidUdpServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    def power_cycle(self) -> None:
        """Simulate removing and restoring power.

        All volatile state is lost: channels, half-received messages, the lock, the running request
        (cancelled, its response never sent) and the authenticator's own volatile state. The
        socket stays bound, so the band answers again immediately. ``authenticator.power_cycle()``
        runs on the worker thread, after the aborted request has returned and before any new
        request, so the event loop never waits for the authenticator.

        Call it from the server's event loop; from any other thread it is scheduled on that loop
        and this method returns before it has run.
        """
        loop = self._loop
        if loop is not None and not _in_loop_thread(loop):
            loop.call_soon_threadsafe(self.power_cycle)
            return
        logger.info("power cycle")
        self._abort_all()
        self._reply_to.clear()
        self.power_cycles += 1
        if self._executor is not None:
            # Queued on the single worker: after the aborted request returns, before any new one.
            self._executor.submit(self._power_cycle_authenticator)
        else:
            self._power_cycle_authenticator()

    def _power_cycle_authenticator(self) -> None:
        try:
            self.authenticator.power_cycle()
        except Exception:  # the front end keeps serving whatever the firmware model does
            logger.exception("the authenticator failed to power-cycle")

    # ------------------------------------------------------------------ input

    def _on_datagram(self, data: bytes, addr: Address) -> None:
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "RECV %s:%d %s", addr[0], addr[1], data.hex())
        if len(data) != REPORT_SIZE:
            logger.debug("ignoring a datagram of %d bytes from %s:%d", len(data), *addr)
            return
        if data == REBOOT_DATAGRAM:
            self.power_cycle()
            return
        self._remember_sender(data, addr)
        assert self._loop is not None
        self._sender = addr
        try:
            self._perform(self.channels.receive(data, self._loop.time()))
        finally:
            self._sender = None

    def _remember_sender(self, data: bytes, addr: Address) -> None:
        """Where a channel's later reports (a message timeout) go: its last datagram's sender."""
        if self.peer is not None:
            return
        if len(self._reply_to) > 1024:  # arbitrary channel ids must not grow this without bound
            self._reply_to.clear()
        self._reply_to[int.from_bytes(data[:4], "big")] = addr

    def _on_timer(self) -> None:
        self._timer = None
        assert self._loop is not None
        self._perform(self.channels.expire(self._loop.time()))

    def _perform(self, actions: list[Action]) -> None:
        for action in actions:
            if isinstance(action, Reply):
                self._send_message(action.cid, action.cmd, action.payload)
            elif isinstance(action, Dispatch):
                self._start_request(action)
            elif isinstance(action, Cancel):
                self._cancel(action.token, discard=action.discard)
        self._schedule_timer()

    def _schedule_timer(self) -> None:
        deadline = self.channels.next_deadline()
        if self._timer is not None:
            if deadline is not None and self._timer.when() == deadline:
                return
            self._timer.cancel()
            self._timer = None
        if deadline is not None and self._loop is not None:
            self._timer = self._loop.call_at(deadline, self._on_timer)

    # ------------------------------------------------------------------ output

    def _send_message(self, cid: int, cmd: int, payload: bytes,
                      to: Address | None = None) -> None:
        try:
            reports = encode_message(cid, cmd, payload)
        except ValueError:
            logger.error("response of %d bytes does not fit CTAPHID", len(payload))
            reports = [error_report(cid, HidErrorCode.OTHER)]
        for report in reports:
            self._send_report(cid, report, to)

    def _send_report(self, cid: int, report: bytes, to: Address | None = None) -> None:
        if self._transport is None:
            return
        addr = self.peer or to or self._reply_to.get(cid) or self._sender
        if addr is None:
            return
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "SEND %s:%d %s", addr[0], addr[1], report.hex())
        self._transport.sendto(report, addr)

    # ------------------------------------------------------------------ requests

    def _start_request(self, action: Dispatch) -> None:
        assert self._loop is not None and self._executor is not None
        request = _Request(token=action.token, cid=action.cid,
                           addr=self._reply_to.get(action.cid) or self._sender)
        self._requests[action.token] = request
        if action.cmd is Command.CBOR:
            request.keepalive = self._loop.call_later(
                self.keepalive_interval, self._keepalive_tick, request
            )
        future = self._loop.run_in_executor(self._executor, self._call, request, action)
        future.add_done_callback(functools.partial(self._finish_request, request, action.cmd))

    def _call(self, request: _Request, action: Dispatch) -> bytes:
        """Runs in a worker thread."""
        if action.cmd is Command.CBOR:
            return self.authenticator.process_cbor(
                action.payload,
                cancel=request.cancel,
                keepalive=functools.partial(self._on_keepalive_status, request),
            )
        if action.cmd is Command.MSG:
            return self.authenticator.process_u2f(action.payload)
        if isinstance(self.authenticator, SupportsWink):
            self.authenticator.wink()
        return b""

    def _finish_request(
        self, request: _Request, cmd: Command, future: asyncio.Future[bytes]
    ) -> None:
        if request.keepalive is not None:
            request.keepalive.cancel()
        self._requests.pop(request.token, None)
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            reply: tuple[int, bytes] = (cmd, future.result())
        else:
            logger.error("authenticator failed on %s", cmd.name, exc_info=error)
            reply = (Command.ERROR, bytes([HidErrorCode.OTHER]))
        if self.channels.complete(request.token) and not request.discard:
            self._send_message(request.cid, *reply, to=request.addr)

    def _on_keepalive_status(self, request: _Request, status: int) -> None:
        """The authenticator's keepalive callback (worker thread); the next tick reports it."""
        if status in (KeepaliveStatus.PROCESSING, KeepaliveStatus.UPNEEDED):
            request.status = status
        else:
            logger.debug("ignoring keepalive status %r", status)

    def _keepalive_tick(self, request: _Request) -> None:
        if request.discard or self._requests.get(request.token) is not request:
            return
        self._send_report(request.cid, keepalive_report(request.cid, request.status), request.addr)
        assert self._loop is not None
        request.keepalive = self._loop.call_later(
            self.keepalive_interval, self._keepalive_tick, request
        )

    def _cancel(self, token: int, *, discard: bool) -> None:
        request = self._requests.get(token)
        if request is None:
            return
        request.discard = request.discard or discard
        request.cancel.set()

    def _abort_all(self) -> None:
        for action in self.channels.power_cycle():
            if isinstance(action, Cancel):
                self._cancel(action.token, discard=True)
        for request in self._requests.values():
            request.discard = True
            request.cancel.set()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ set-up

    async def _probe_authenticator(self) -> None:
        """Derive INIT capabilities and the message limit from the authenticator's getInfo."""
        assert self._loop is not None
        versions: list[object] = []
        max_msg_size = MAX_MESSAGE_SIZE
        try:
            response = await self._loop.run_in_executor(
                self._executor, lambda: self.authenticator.process_cbor(_GET_INFO)
            )
            if response[:1] == bytes([_CTAP2_OK]):
                info = cbor2.loads(response[1:])
                if isinstance(info, dict):
                    raw_versions = info.get(1, [])
                    versions = list(raw_versions) if isinstance(raw_versions, list) else []
                    size = info.get(5, _CTAP2_DEFAULT_MAX_MSG_SIZE)
                    max_msg_size = size if isinstance(size, int) and size > 0 else max_msg_size
        except Exception as exc:  # any authenticator, even one without getInfo, can be served
            logger.debug("getInfo probe failed (%s); using CTAPHID defaults", exc)
        capabilities = Capability.CBOR
        if isinstance(self.authenticator, SupportsWink) and getattr(
                self.authenticator, "can_wink", True):
            capabilities |= Capability.WINK
        if versions and "U2F_V2" not in versions:
            capabilities |= Capability.NMSG
        if self._capabilities is None:
            self.channels.capabilities = capabilities
        if self._max_msg_size is None:
            self.channels.max_msg_size = min(max_msg_size, MAX_MESSAGE_SIZE)
        logger.debug(
            "capabilities %s, max message %d bytes",
            self.channels.capabilities,
            self.channels.max_msg_size,
        )


def _in_loop_thread(loop: asyncio.AbstractEventLoop) -> bool:
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


async def serve_ctaphid_udp(
    authenticator: CtapHidAuthenticator,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    peer: Address | None = None,
    msg_timeout: float = DEFAULT_MSG_TIMEOUT,
    keepalive_interval: float = DEFAULT_KEEPALIVE_INTERVAL,
) -> CtapHidUdpServer:
    """Serve ``authenticator`` as CTAPHID over UDP and return the started server.

    Defaults follow the public FIDO2 simulator contract: bind 127.0.0.1:8111 and answer each
    sender (the public tooling sends from 127.0.0.1:7112). Stop it with ``await server.close()``.
    """
    server = CtapHidUdpServer(
        authenticator,
        host=host,
        port=port,
        peer=peer,
        msg_timeout=msg_timeout,
        keepalive_interval=keepalive_interval,
    )
    await server.start()
    return server
