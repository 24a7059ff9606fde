"""The band's GATT database: Device Information, Battery, band management, FIDO over BLE.

* Device Information (0x180A) and Battery (0x180F) are readable without pairing, as on any
  wearable; the battery level also notifies when its whole-percent value changes.
* The band management service is a slot: its UUIDs and a per-connection handler come from
  :class:`ManagementService`. Both of its characteristics require an encrypted link (LE Secure
  Connections pairing first).
* FIDO over BLE (CTAP 2.1 §11.4) is :class:`FidoBleServer`: fidoControlPoint (write),
  fidoStatus (notify), fidoControlPointLength (read) and fidoServiceRevisionBitfield
  (read/write), all requiring encryption ("Clients and Authenticators ... SHALL encrypt all
  communications"). Requests run on the authenticator in one worker thread per band, so the
  event loop stays free to send KEEPALIVE notifications and to receive CANCEL.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import functools
import logging
import struct
import threading
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bumble import att, gatt
from bumble.device import Connection, Device
from bumble.gatt import Characteristic, CharacteristicValue, Service
from bumble.profiles.device_information_service import DeviceInformationService

from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.fido_ble import (
    FIDO_CONTROL_POINT,
    FIDO_CONTROL_POINT_LENGTH,
    FIDO_SERVICE,
    FIDO_SERVICE_REVISION_BITFIELD,
    FIDO_STATUS,
    MAX_CONTROL_POINT_LENGTH,
    MIN_CONTROL_POINT_LENGTH,
    BleErrorCode,
    Command,
    Failure,
    KeepaliveStatus,
    Message,
    Reassembler,
    ServiceRevision,
    error_frame,
    fragment,
    keepalive_frame,
)
from simulator.band.band import EmulatedBand

__all__ = [
    "BleAuthenticator",
    "FidoBleServer",
    "ManagementHandler",
    "ManagementLink",
    "ManagementService",
    "battery_service",
    "device_information_service",
    "fragment_size",
    "notify",
]

logger = logging.getLogger(__name__)

_P = Characteristic.Properties
_PERM = att.Attribute.Permissions
_READ = _PERM.READABLE
_READ_ENC = _PERM.READABLE | _PERM.READ_REQUIRES_ENCRYPTION
_WRITE_ENC = _PERM.WRITEABLE | _PERM.WRITE_REQUIRES_ENCRYPTION
_NONE = _PERM(0)


def fragment_size(connection: Connection) -> int:
    """Largest fragment on this link: ``ATT_MTU - 3``, within fidoControlPointLength's range."""
    return max(MIN_CONTROL_POINT_LENGTH, min(MAX_CONTROL_POINT_LENGTH, connection.att_mtu - 3))


def notify(device: Device, connection: Connection, characteristic: Characteristic[bytes],
           value: bytes) -> bool:
    """Send one notification now if the peer subscribed to it; in call order, no task needed."""
    cccd = device.gatt_server.subscribers.get(connection, {}).get(characteristic.handle)
    if not cccd or not cccd[0] & 0x01:
        return False
    if logger.isEnabledFor(TRAFFIC):
        logger.log(TRAFFIC, "NOTIFY 0x%04x %s", characteristic.handle, value.hex())
    pdu = att.ATT_Handle_Value_Notification(attribute_handle=characteristic.handle,
                                            attribute_value=value)
    device.gatt_server.send_gatt_pdu(connection, bytes(pdu))
    return True


# --- Device Information and Battery ---------------------------------------------------------

def device_information_service(band: EmulatedBand) -> Service:
    identity = band.fixture.identity
    return DeviceInformationService(
        manufacturer_name=identity.manufacturer,
        model_number=identity.model_name,
        serial_number=band.identity.serial,
        hardware_revision=identity.hardware_revision,
        firmware_revision=identity.firmware_version,
    )


def battery_service(level: Callable[[], int]) -> tuple[Service, Characteristic[bytes]]:
    """Battery (0x180F) with its level (0x2A19, one byte, percent); returns the characteristic."""
    characteristic: Characteristic[bytes] = Characteristic(
        gatt.GATT_BATTERY_LEVEL_CHARACTERISTIC, _P.READ | _P.NOTIFY, _READ,
        CharacteristicValue(read=lambda _connection: bytes([level()])),
    )
    return Service(gatt.GATT_BATTERY_SERVICE, [characteristic]), characteristic


# --- band management slot -------------------------------------------------------------------

class ManagementHandler(Protocol):
    """One connection's end of the band management protocol, on the band.

    ``receive`` gets every fragment the host writes, in order, on the event loop thread, and
    returns the fragments to notify back (possibly none). A handler that also has ``close()``
    is told when the connection ends.
    """

    def receive(self, fragment: bytes) -> list[bytes]: ...


@runtime_checkable
class _SupportsClose(Protocol):
    def close(self) -> None: ...


class ManagementLink:
    """What the band offers a management handler about its connection."""

    def __init__(self, device: Device, connection: Connection,
                 characteristic: Characteristic[bytes]) -> None:
        self._device = device
        self._connection = connection
        self._characteristic = characteristic
        self._loop = asyncio.get_running_loop()

    @property
    def peer_address(self) -> str:
        return str(self._connection.peer_address)

    @property
    def att_mtu(self) -> int:
        return int(self._connection.att_mtu)

    @property
    def max_fragment(self) -> int:
        """The largest notification (and write) on this link now: ``ATT_MTU - 3``."""
        return max(MIN_CONTROL_POINT_LENGTH, self._connection.att_mtu - 3)

    @property
    def encrypted(self) -> bool:
        return bool(self._connection.is_encrypted)

    def push(self, fragments: Sequence[bytes]) -> None:
        """Notify unsolicited fragments (events); safe to call from any thread."""
        frames = list(fragments)

        def send() -> None:
            for frame in frames:
                notify(self._device, self._connection, self._characteristic, frame)

        self._loop.call_soon_threadsafe(send)

    def push_from(self, take: Callable[[], Sequence[bytes]]) -> None:
        """Collect fragments with ``take`` and notify them, in one step on the event loop.

        Safe to call from any thread. ``take`` runs on the loop, in the same callback that
        notifies what it returns, so nothing the handler sends in between (a response to a
        write) can overtake those fragments: the order the handler hands fragments out is the
        order they go on the air (docs/protocol.md §3.1).
        """

        def send() -> None:
            for frame in take():
                notify(self._device, self._connection, self._characteristic, frame)

        self._loop.call_soon_threadsafe(send)


@dataclass(frozen=True)
class ManagementService:
    """The band management service's GATT layout and protocol, given to the radio.

    :param open: builds the handler for one connection, on its first write.
    """

    service_uuid: str | uuid.UUID
    write_uuid: str | uuid.UUID
    notify_uuid: str | uuid.UUID
    open: Callable[[ManagementLink], ManagementHandler]

    def build(self, device: Device) -> tuple[Service, Callable[[Connection], None]]:
        """The GATT service, and what to call when a connection ends."""
        handlers: dict[int, ManagementHandler] = {}
        notifier: Characteristic[bytes] = Characteristic(
            str(self.notify_uuid), _P.NOTIFY, _NONE)

        def on_write(connection: Connection, value: bytes) -> None:
            handler = handlers.get(connection.handle)
            if handler is None:
                handler = handlers[connection.handle] = self.open(
                    ManagementLink(device, connection, notifier))
            for frame in handler.receive(bytes(value)):
                notify(device, connection, notifier, frame)

        def on_disconnection(connection: Connection) -> None:
            handler = handlers.pop(connection.handle, None)
            if isinstance(handler, _SupportsClose):
                handler.close()

        writer: Characteristic[bytes] = Characteristic(
            str(self.write_uuid), _P.WRITE | _P.WRITE_WITHOUT_RESPONSE, _WRITE_ENC,
            CharacteristicValue(write=on_write))
        return Service(str(self.service_uuid), [writer, notifier]), on_disconnection


# --- FIDO over BLE --------------------------------------------------------------------------

class BleAuthenticator(Protocol):
    """What the FIDO BLE service needs from the band's authenticator."""

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes:
        """CTAP2 command byte + CBOR in, status byte + CBOR out (in a worker thread)."""
        ...

    def process_u2f(self, apdu: bytes) -> bytes:
        """A U2F (CTAP1) APDU in, response data + status word out."""
        ...


@dataclass
class _Request:
    cancel: threading.Event = field(default_factory=threading.Event)
    status: int = KeepaliveStatus.PROCESSING
    keepalive: asyncio.TimerHandle | None = None
    discard: bool = False


@dataclass
class _Session:
    connection: Connection
    reassembler: Reassembler
    revision: ServiceRevision | None = None
    request: _Request | None = None
    timer: asyncio.TimerHandle | None = None


class FidoBleServer:
    """The FIDO service (0xFFFD) of one band, CTAP 2.1 §11.4.

    :param device: the band's Bumble device (the service is added to its GATT server).
    :param authenticator: the band's CTAP authenticator.
    :param u2f: whether U2F 1.2 is offered next to FIDO2 in fidoServiceRevisionBitfield.
    :param max_message: the largest request accepted (getInfo maxMsgSize).
    :param keepalive_interval: seconds between KEEPALIVE notifications while a request runs.
    :param msg_timeout: seconds a half-received request may stall before ERR_REQ_TIMEOUT.
    :param answer_within_write: seconds the write of a request's last fragment waits for the
        answer. A request that finishes by then (most do: nothing waits for the wearer) is
        notified before the write response, so it costs one round trip on the air, as a plain
        GATT write + notify does; the event loop waits on the worker directly (one thread
        switch each way, no loop wake-up). A longer request releases the write and answers
        later, with KEEPALIVEs meanwhile and CANCEL possible (a pending write would block it).
        The loop is held for at most this long per request.
    :param inline: the authenticator never waits for the wearer (a Nymi band: presence and UV
        are its wrist authentication), so every request runs in the event loop's own thread,
        answered before the write response, with no hand-over to the worker at all.
    """

    def __init__(
        self,
        device: Device,
        authenticator: BleAuthenticator,
        *,
        u2f: bool = True,
        max_message: int = 7609,
        keepalive_interval: float = 0.1,
        msg_timeout: float = 5.0,
        answer_within_write: float = 0.005,
        inline: bool = False,
    ) -> None:
        self.device = device
        self.authenticator = authenticator
        self.revisions = ServiceRevision.FIDO2
        if u2f:
            self.revisions |= ServiceRevision.U2F_1_2
        self.max_message = max_message
        self.keepalive_interval = keepalive_interval
        self.msg_timeout = msg_timeout
        self.answer_within_write = answer_within_write
        self.inline = inline
        self._loop = asyncio.get_running_loop()
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=1, thread_name_prefix="fido-ble")
        self._sessions: dict[int, _Session] = {}
        self.status: Characteristic[bytes] = Characteristic(FIDO_STATUS, _P.NOTIFY, _NONE)
        self.service = Service(FIDO_SERVICE, [
            Characteristic(FIDO_CONTROL_POINT, _P.WRITE, _WRITE_ENC,
                           CharacteristicValue(write=self._on_control_point)),
            self.status,
            Characteristic(FIDO_CONTROL_POINT_LENGTH, _P.READ, _READ_ENC,
                           CharacteristicValue(read=self._read_length)),
            Characteristic(FIDO_SERVICE_REVISION_BITFIELD, _P.READ | _P.WRITE,
                           _READ_ENC | _WRITE_ENC,
                           CharacteristicValue(read=self._read_revision,
                                               write=self._write_revision)),
        ])

    def close(self) -> None:
        for connection_handle in list(self._sessions):
            self._drop(connection_handle)
        self._executor.shutdown(wait=False, cancel_futures=True)

    def on_disconnection(self, connection: Connection) -> None:
        self._drop(connection.handle)

    # -- characteristics ---------------------------------------------------------------------

    def _session(self, connection: Connection) -> _Session:
        session = self._sessions.get(connection.handle)
        if session is None or session.connection is not connection:
            session = _Session(connection, Reassembler(max_message=self.max_message))
            self._sessions[connection.handle] = session
        return session

    def _read_length(self, connection: Connection) -> bytes:
        return struct.pack(">H", fragment_size(connection))

    def _read_revision(self, connection: Connection) -> bytes:
        return bytes([int(self.revisions)])

    def _write_revision(self, connection: Connection, value: bytes) -> None:
        if len(value) != 1:
            raise att.ATT_Error(att.ATT_INVALID_ATTRIBUTE_LENGTH_ERROR)
        bit = value[0]
        if bit.bit_count() != 1 or not bit & int(self.revisions):
            raise att.ATT_Error(att.ErrorCode.VALUE_NOT_ALLOWED)
        self._session(connection).revision = ServiceRevision(bit)

    def _on_control_point(self, connection: Connection, value: bytes) -> None:
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "WRITE fidoControlPoint %s", bytes(value).hex())
        session = self._session(connection)
        session.reassembler.max_fragment = fragment_size(connection)
        result = session.reassembler.feed(bytes(value))
        if session.timer is not None or session.reassembler.busy:
            self._arm_timer(session)
        if isinstance(result, Failure):
            logger.debug("framing error from %s: %s", connection.peer_address, result.reason)
            self._send(session, error_frame(result.code))
        elif isinstance(result, Message):
            self._dispatch(session, result)

    def _arm_timer(self, session: _Session) -> None:
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None
        if session.reassembler.busy:
            session.timer = self._loop.call_later(self.msg_timeout, self._expire, session)

    def _expire(self, session: _Session) -> None:
        session.timer = None
        if session.reassembler.busy:
            session.reassembler.reset()
            self._send(session, error_frame(BleErrorCode.REQ_TIMEOUT))

    # -- requests ------------------------------------------------------------------------------

    def _dispatch(self, session: _Session, message: Message) -> None:
        if message.cmd == Command.CANCEL:
            if session.request is not None:
                session.request.cancel.set()
            return
        if session.request is not None:
            self._send(session, error_frame(BleErrorCode.BUSY))
            return
        if message.cmd == Command.PING:
            self._send_message(session, Command.PING, message.data)
            return
        if not message.data:
            self._send(session, error_frame(BleErrorCode.INVALID_LEN))
            return
        u2f = session.revision == ServiceRevision.U2F_1_2 or message.data[0] == 0x00
        if self.inline:
            self._answer_now(session, message.data, u2f)
            return
        request = session.request = _Request()
        # The fast path: the loop waits for the worker directly, and answers at once.
        work = self._executor.submit(self._call, request, message.data, u2f)
        done, _pending = concurrent.futures.wait([work], timeout=self.answer_within_write)
        if done:
            self._finish(session, request, work)
            return
        request.keepalive = self._loop.call_later(
            self.keepalive_interval, self._keepalive_tick, session, request)
        asyncio.wrap_future(work, loop=self._loop).add_done_callback(
            functools.partial(self._finish, session, request))

    def _answer_now(self, session: _Session, data: bytes, u2f: bool) -> None:
        """An authenticator that never waits, answered in the loop's thread."""
        try:
            if u2f:
                response = self.authenticator.process_u2f(data)
            else:
                response = self.authenticator.process_cbor(data)
        except Exception:
            logger.exception("the authenticator failed")
            self._send(session, error_frame(BleErrorCode.OTHER))
            return
        self._send_message(session, Command.MSG, response)

    def _call(self, request: _Request, data: bytes, u2f: bool) -> bytes:
        """Runs in the worker thread."""
        if u2f:
            return self.authenticator.process_u2f(data)

        def on_keepalive(status: int) -> None:
            if status in (KeepaliveStatus.PROCESSING, KeepaliveStatus.UPNEEDED):
                request.status = status

        return self.authenticator.process_cbor(data, cancel=request.cancel,
                                               keepalive=on_keepalive)

    def _finish(self, session: _Session, request: _Request,
                future: asyncio.Future[bytes] | concurrent.futures.Future[bytes]) -> None:
        if request.keepalive is not None:
            request.keepalive.cancel()
        if session.request is request:
            session.request = None
        if request.discard or future.cancelled():
            return
        error = future.exception()
        if error is not None:
            logger.error("the authenticator failed", exc_info=error)
            self._send(session, error_frame(BleErrorCode.OTHER))
            return
        self._send_message(session, Command.MSG, future.result())

    def _keepalive_tick(self, session: _Session, request: _Request) -> None:
        if request.discard or session.request is not request:
            return
        self._send(session, keepalive_frame(request.status))
        request.keepalive = self._loop.call_later(
            self.keepalive_interval, self._keepalive_tick, session, request)

    # -- output --------------------------------------------------------------------------------

    def _send_message(self, session: _Session, cmd: Command, data: bytes) -> None:
        try:
            frames = fragment(cmd, data, fragment_size(session.connection))
        except ValueError:
            logger.error("a response of %d bytes does not fit a BLE message", len(data))
            frames = [error_frame(BleErrorCode.OTHER)]
        for frame in frames:
            self._send(session, frame)

    def _send(self, session: _Session, frame: bytes) -> None:
        if self._sessions.get(session.connection.handle) is session:
            notify(self.device, session.connection, self.status, frame)

    def _drop(self, connection_handle: int) -> None:
        session = self._sessions.pop(connection_handle, None)
        if session is None:
            return
        if session.timer is not None:
            session.timer.cancel()
        request = session.request
        if request is not None:
            request.discard = True
            request.cancel.set()
            if request.keepalive is not None:
                request.keepalive.cancel()
