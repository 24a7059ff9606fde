"""The band's CTAPHID channel layer as a pure state machine (CTAP 2.1 §11.2).

:class:`CtapHidChannels` takes raw 64-byte reports plus the current time and returns *actions*:
replies to send, requests to hand to the authenticator, cancellations. It performs no I/O, owns no
timers and never blocks, so any transport (UDP here, USB HID or a test) can drive it, and property
tests can feed it arbitrary bytes.

Rules it implements:

* One transaction at a time for the whole device (§11.2.4): from the first packet of a request
  until its response is sent. Packets that would start a request on another channel get
  ``ERR_CHANNEL_BUSY``.
* ``CTAPHID_INIT`` is answered at any time: on the broadcast channel it allocates a channel, on any
  other channel it resynchronises that channel, aborting its half-received message or running
  request (§11.2.9.1.3).
* ``CTAPHID_CANCEL`` is never answered; it cancels the channel's running request (§11.2.9.1.5).
* ``CTAPHID_LOCK`` reserves the device for one channel for up to 10 s; everything from other
  channels then gets ``ERR_CHANNEL_BUSY`` (§11.2.9.2.2).
* A message whose next packet does not arrive within ``msg_timeout`` seconds is dropped and
  ``ERR_MSG_TIMEOUT`` is sent on its channel without being asked (see :meth:`expire`).
* Any channel other than 0 and the broadcast channel is accepted without a prior INIT. Channel 0
  gets ``ERR_INVALID_CHANNEL``, as does the broadcast channel for anything but INIT.
* Spurious continuation packets (no message being received) are ignored (§11.2.4).
* ``ERR_LOCK_REQUIRED`` is never produced: no command of this device requires the lock.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from nymi_device.errors import InvalidInputError
from nymi_device.protocol.ctaphid import (
    BROADCAST_CID,
    CONT_DATA_SIZE,
    INIT_DATA_SIZE,
    MAX_MESSAGE_SIZE,
    RESERVED_CID,
    Capability,
    Command,
    ContinuationPacket,
    HidErrorCode,
    InitPacket,
    InitResponse,
    command_name,
    decode_packet,
)

__all__ = [
    "DEFAULT_MSG_TIMEOUT",
    "MAX_LOCK_SECONDS",
    "Action",
    "Cancel",
    "CtapHidChannels",
    "Dispatch",
    "Reply",
]

logger = logging.getLogger(__name__)

#: Seconds a half-received message may stall before ERR_MSG_TIMEOUT.
DEFAULT_MSG_TIMEOUT = 0.5
#: Longest CTAPHID_LOCK, in seconds (§11.2.9.2.2).
MAX_LOCK_SECONDS = 10

#: Request commands that may start a transaction (INIT and CANCEL are handled before).
_REQUESTS = {
    int(cmd): cmd
    for cmd in (Command.PING, Command.MSG, Command.LOCK, Command.WINK, Command.CBOR)
}


@dataclass(frozen=True, slots=True)
class Reply:
    """Send this complete message (the transport fragments it with ``encode_message``)."""

    cid: int
    cmd: int
    payload: bytes


@dataclass(frozen=True, slots=True)
class Dispatch:
    """Run this request on the authenticator, then call :meth:`CtapHidChannels.complete`.

    ``token`` identifies the request in :class:`Cancel` and :meth:`CtapHidChannels.complete`.
    """

    token: int
    cid: int
    cmd: Command
    payload: bytes


@dataclass(frozen=True, slots=True)
class Cancel:
    """Cancel the running request ``token``.

    ``discard`` is true when the request was aborted (INIT resync, power cycle): its response must
    not be sent. Otherwise (CTAPHID_CANCEL) the authenticator's response, typically
    CTAP2_ERR_KEEPALIVE_CANCEL, is still delivered.
    """

    token: int
    discard: bool


Action = Reply | Dispatch | Cancel


@dataclass(slots=True)
class _Assembly:
    cid: int
    cmd: Command
    total: int
    buffer: bytearray
    next_seq: int
    deadline: float


@dataclass(frozen=True, slots=True)
class _Running:
    token: int
    cid: int
    cmd: Command


def _error(cid: int, code: HidErrorCode) -> Reply:
    return Reply(cid, Command.ERROR, bytes([code]))


class CtapHidChannels:
    """CTAPHID channel allocation, message reassembly and HID-level commands of one device.

    :param capabilities: flags reported by INIT (CBOR, WINK, NMSG).
    :param device_version: (major, minor, build) reported by INIT.
    :param max_msg_size: the authenticator's own limit for MSG and CBOR requests; PING is limited
        only by the CTAPHID maximum of 7609 bytes.
    :param msg_timeout: seconds between packets of one message before ERR_MSG_TIMEOUT.
    """

    def __init__(
        self,
        *,
        capabilities: Capability = Capability.CBOR,
        device_version: tuple[int, int, int] = (1, 0, 0),
        max_msg_size: int = MAX_MESSAGE_SIZE,
        msg_timeout: float = DEFAULT_MSG_TIMEOUT,
    ) -> None:
        if msg_timeout <= 0:
            raise InvalidInputError("msg_timeout must be positive")
        self.capabilities = capabilities
        self.device_version = device_version
        self.max_msg_size = min(max_msg_size, MAX_MESSAGE_SIZE)
        self.msg_timeout = msg_timeout
        self._last_cid = 0
        self._assembly: _Assembly | None = None
        self._running: _Running | None = None
        self._lock_cid: int | None = None
        self._lock_until = 0.0
        self._next_token = 1  # never reset, so tokens from before a reset never match

    # ------------------------------------------------------------------ state

    def reset(self) -> None:
        """Forget all volatile state: channels, half-received messages, lock, running request.

        The caller cancels and discards any request it is still running (see :meth:`power_cycle`).
        """
        self._last_cid = 0
        self._assembly = None
        self._running = None
        self._lock_cid = None
        self._lock_until = 0.0

    def power_cycle(self) -> list[Action]:
        """:meth:`reset`, returning a discarding :class:`Cancel` for the running request, if any."""
        actions: list[Action] = []
        if self._running is not None:
            actions.append(Cancel(self._running.token, discard=True))
        self.reset()
        return actions

    @property
    def busy_cid(self) -> int | None:
        """The channel whose transaction occupies the device, or None when idle."""
        if self._running is not None:
            return self._running.cid
        if self._assembly is not None:
            return self._assembly.cid
        return None

    @property
    def running_token(self) -> int | None:
        """Token of the request the authenticator is working on, if any."""
        return self._running.token if self._running is not None else None

    def locked_cid(self, now: float) -> int | None:
        """The channel holding a CTAPHID_LOCK at ``now``, if any."""
        if self._lock_cid is not None and now >= self._lock_until:
            self._lock_cid = None
        return self._lock_cid

    def next_deadline(self) -> float | None:
        """When :meth:`expire` next has work to do (a stalled message), or None."""
        return self._assembly.deadline if self._assembly is not None else None

    # ------------------------------------------------------------------ input

    def expire(self, now: float) -> list[Action]:
        """Time out a message whose next packet is overdue: send ERR_MSG_TIMEOUT, unsolicited."""
        assembly = self._assembly
        if assembly is None or now < assembly.deadline:
            return []
        self._assembly = None
        logger.debug("channel %08x: message timed out", assembly.cid)
        return [_error(assembly.cid, HidErrorCode.MSG_TIMEOUT)]

    def complete(self, token: int) -> bool:
        """The authenticator finished request ``token``; the device is free again.

        :return: True if its response must be sent, False if the request was aborted meanwhile.
        """
        if self._running is None or self._running.token != token:
            return False
        self._running = None
        return True

    def receive(self, report: bytes, now: float) -> list[Action]:
        """Process one report received at ``now`` (seconds, monotonic).

        Never raises on bad input: a malformed report yields an error reply or nothing.
        """
        actions = self.expire(now)
        try:
            packet = decode_packet(report)
        except InvalidInputError:
            logger.debug("ignoring a report of %d bytes", len(report))
            return actions
        if packet.cid == RESERVED_CID:
            actions.append(_error(packet.cid, HidErrorCode.INVALID_CHANNEL))
            return actions
        locked = self.locked_cid(now)
        if locked is not None and locked != packet.cid:
            actions.append(_error(packet.cid, HidErrorCode.CHANNEL_BUSY))
            return actions
        if isinstance(packet, InitPacket):
            actions.extend(self._on_init_packet(packet, now))
        else:
            actions.extend(self._on_continuation(packet, now))
        return actions

    # ------------------------------------------------------------------ packets

    def _on_continuation(self, packet: ContinuationPacket, now: float) -> list[Action]:
        assembly = self._assembly
        if assembly is None:
            logger.debug("channel %08x: spurious continuation ignored", packet.cid)
            return []
        if packet.cid != assembly.cid:
            return [_error(packet.cid, HidErrorCode.CHANNEL_BUSY)]
        if packet.seq != assembly.next_seq:
            self._assembly = None
            return [_error(packet.cid, HidErrorCode.INVALID_SEQ)]
        remaining = assembly.total - len(assembly.buffer)
        assembly.buffer += packet.data[: min(remaining, CONT_DATA_SIZE)]
        assembly.next_seq += 1
        assembly.deadline = now + self.msg_timeout
        if len(assembly.buffer) < assembly.total:
            return []
        self._assembly = None
        return self._on_message(assembly.cid, assembly.cmd, bytes(assembly.buffer), now)

    def _on_init_packet(self, packet: InitPacket, now: float) -> list[Action]:
        cid, cmd = packet.cid, packet.cmd
        if cmd == Command.INIT:
            return self._on_init(packet)
        if cid == BROADCAST_CID:
            return [_error(cid, HidErrorCode.INVALID_CHANNEL)]
        if cmd == Command.CANCEL:
            return self._on_cancel(cid)
        busy = self.busy_cid
        if busy is not None:
            if busy == cid and self._assembly is not None:
                # A new request in the middle of a message: the message is lost.
                self._assembly = None
                return [_error(cid, HidErrorCode.INVALID_SEQ)]
            return [_error(cid, HidErrorCode.CHANNEL_BUSY)]
        command = _REQUESTS.get(cmd)
        if command is None:
            logger.debug("channel %08x: unsupported command %s", cid, command_name(cmd))
            return [_error(cid, HidErrorCode.INVALID_CMD)]
        if command is Command.WINK and not self.capabilities & Capability.WINK:
            return [_error(cid, HidErrorCode.INVALID_CMD)]
        if command is Command.MSG and self.capabilities & Capability.NMSG:
            return [_error(cid, HidErrorCode.INVALID_CMD)]
        limit = self.max_msg_size if command in (Command.MSG, Command.CBOR) else MAX_MESSAGE_SIZE
        if packet.bcnt > limit:
            return [_error(cid, HidErrorCode.INVALID_LEN)]
        if packet.bcnt <= INIT_DATA_SIZE:
            return self._on_message(cid, command, packet.payload, now)
        self._assembly = _Assembly(
            cid=cid,
            cmd=command,
            total=packet.bcnt,
            buffer=bytearray(packet.data),
            next_seq=0,
            deadline=now + self.msg_timeout,
        )
        return []

    # ------------------------------------------------------------------ commands

    def _on_init(self, packet: InitPacket) -> list[Action]:
        """CTAPHID_INIT (§11.2.9.1.3): allocate on broadcast, resynchronise otherwise."""
        cid = packet.cid
        if packet.bcnt != 8:
            return [_error(cid, HidErrorCode.INVALID_LEN)]
        actions: list[Action] = []
        if cid == BROADCAST_CID:
            new_cid = self._allocate()
        else:
            new_cid = cid
            if self._assembly is not None and self._assembly.cid == cid:
                self._assembly = None
            if self._running is not None and self._running.cid == cid:
                actions.append(Cancel(self._running.token, discard=True))
                self._running = None
        response = InitResponse(
            nonce=packet.payload,
            cid=new_cid,
            device_version=self.device_version,
            capabilities=int(self.capabilities),
        )
        actions.append(Reply(cid, Command.INIT, response.encode()))
        return actions

    def _allocate(self) -> int:
        cid = self._last_cid + 1
        if cid >= BROADCAST_CID:
            cid = 1
        self._last_cid = cid
        return cid

    def _on_cancel(self, cid: int) -> list[Action]:
        """CTAPHID_CANCEL (§11.2.9.1.5): never answered."""
        if self._running is not None and self._running.cid == cid:
            return [Cancel(self._running.token, discard=False)]
        if self._assembly is not None and self._assembly.cid == cid:
            self._assembly = None
        return []

    def _on_message(self, cid: int, cmd: Command, payload: bytes, now: float) -> list[Action]:
        """A complete request from ``cid``."""
        if cmd is Command.PING:
            return [Reply(cid, Command.PING, payload)]
        if cmd is Command.LOCK:
            return self._on_lock(cid, payload, now)
        if cmd is Command.WINK and payload:
            return [_error(cid, HidErrorCode.INVALID_LEN)]
        if cmd is Command.CBOR and not payload:
            return [_error(cid, HidErrorCode.INVALID_LEN)]
        token = self._next_token
        self._next_token += 1
        self._running = _Running(token=token, cid=cid, cmd=cmd)
        return [Dispatch(token=token, cid=cid, cmd=cmd, payload=payload)]

    def _on_lock(self, cid: int, payload: bytes, now: float) -> list[Action]:
        """CTAPHID_LOCK (§11.2.9.2.2): 0 releases, 1..10 seconds locks to ``cid``."""
        if len(payload) != 1:
            return [_error(cid, HidErrorCode.INVALID_LEN)]
        seconds = payload[0]
        if seconds > MAX_LOCK_SECONDS:
            return [_error(cid, HidErrorCode.INVALID_PAR)]
        if seconds == 0:
            self._lock_cid = None
        else:
            self._lock_cid = cid
            self._lock_until = now + seconds
        return [Reply(cid, Command.LOCK, b"")]
