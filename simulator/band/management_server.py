"""The band's side of the management protocol (docs/protocol.md), over any carrier of fragments.

:class:`ManagementServer` is transport-free: the BLE front end hands it each value written to the
Management Request characteristic (:meth:`ManagementServer.receive`) and sends every fragment it
gets back as a notification of Management Notify, in order. Events the band pushes between
requests wait in an outbox; ``on_pending`` says when there is something to collect with
:meth:`ManagementServer.take_pending`.

Before a secure session exists it serves only HELLO and GET_INFO (§7.6); it maps the firmware
model's refusals to status codes as §11 says, never lets an exception out of :meth:`receive`, and
never changes the band for a fragment that is not a valid, authenticated request.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from nymi_device.errors import InvalidInputError, SecureSessionError, StatusCode
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.management import (
    MAX_MESSAGE,
    MAX_PLAINTEXT,
    SUPPORTED_VERSIONS,
    Body,
    Command,
    Event,
    MessageError,
    Record,
    Request,
    Response,
    decode_message,
    encode_message,
)
from nymi_device.protocol.management_bodies import Capabilities, encode_capabilities, encode_event
from nymi_device.protocol.management_frames import (
    DEFAULT_ATT_MTU,
    Fragmenter,
    FrameError,
    Reassembler,
)
from nymi_device.protocol.management_session import RecordLayer, Side, answer_hello
from nymi_device.protocol.model import BandEvent, EnrollmentState, EventKind
from simulator.band.band import EmulatedBand
from simulator.band.management_commands import ActivityTracker, Commands, SessionState
from simulator.band.management_identity import IdentityIssuer, provision_management_identity

__all__ = ["ManagementServer"]

logger = logging.getLogger(__name__)

_CAPTURE_KINDS = frozenset({EventKind.CAPTURE, EventKind.ENROLLMENT})


class ManagementServer:
    """One connection's management endpoint on ``band`` (docs/protocol.md §3-§11).

    :param identity_key: the band's identity key (§7.1), which signs every handshake.
    :param certificate_chain: its certificate and the issuing CAs, leaf first, no root.
    :param mtu: the connection's ATT_MTU; a notification carries at most ``min(mtu - 3, 512)``
        bytes.
    :param on_pending: called (from whichever thread changed the band) when pushed events wait
        in the outbox. Collect them with :meth:`take_pending` and notify them in the same step,
        on the thread that calls :meth:`receive` (§3.1): fragments must leave in the order
        they are handed out.
    """

    def __init__(
        self,
        band: EmulatedBand,
        identity_key: ec.EllipticCurvePrivateKey,
        certificate_chain: Sequence[x509.Certificate],
        *,
        mtu: int = DEFAULT_ATT_MTU,
        on_pending: Callable[[], None] | None = None,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        if not certificate_chain:
            raise InvalidInputError("the band's certificate chain is empty")
        self.band = band
        self.on_pending = on_pending
        self._identity_key = identity_key
        self._chain = [c.public_bytes(serialization.Encoding.DER) for c in certificate_chain]
        self._rng = rng
        self._lock = band.lock  # one lock for band and server: events arrive on any thread
        self._fragmenter = Fragmenter(mtu)
        self._reassembler = Reassembler()
        self._outbox: list[bytes] = []
        self._session: SessionState | None = None
        self._in_receive = False
        self._activity = ActivityTracker()
        for event in band.events:
            self._activity.track(event)
        self._commands = Commands(band, self._activity, lambda: self._session)
        self._capabilities_bytes = encode_capabilities(self._commands.capabilities)
        self._unsubscribe_band: Callable[[], None] | None = band.subscribe(self._on_band_event)

    @classmethod
    def for_band(
        cls,
        band: EmulatedBand,
        *,
        issuer: IdentityIssuer | None = None,
        mtu: int = DEFAULT_ATT_MTU,
        on_pending: Callable[[], None] | None = None,
    ) -> ManagementServer:
        """A server with the band's stored identity, provisioned first if the band has none."""
        identity = provision_management_identity(band.storage, band.identity.serial, issuer)
        return cls(band, identity.key, identity.chain, mtu=mtu, on_pending=on_pending)

    # -- the carrier's interface ---------------------------------------------------------------

    @property
    def mtu(self) -> int:
        return self._fragmenter.att_mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self._fragmenter.att_mtu = value

    @property
    def session_open(self) -> bool:
        return self._session is not None

    @property
    def capabilities(self) -> Capabilities:
        return self._commands.capabilities

    def receive(self, fragment: bytes) -> list[bytes]:
        """Take one written fragment; the notification fragments to send now, in order."""
        with self._lock:
            if logger.isEnabledFor(TRAFFIC):
                logger.log(TRAFFIC, "RECV %s", bytes(fragment).hex())
            self._in_receive = True
            try:
                for item in self._reassembler.push(fragment):
                    if isinstance(item, FrameError):
                        self._refuse_connection(item.status, item.reason,
                                                {1: item.message_number})
                    else:
                        self._on_message(item)
            except Exception:  # a bug must not take the radio down; the session cannot continue
                logger.exception("management server failed on a fragment")
                self._refuse_connection(StatusCode.INTERNAL_ERROR, "internal error")
            finally:
                self._in_receive = False
            return self._drain()

    def take_pending(self) -> list[bytes]:
        """Fragments of pushed events waiting to be notified, in order."""
        with self._lock:
            return self._drain()

    def disconnect(self) -> None:
        """The link dropped: the session, any partial message and the numbering start over."""
        with self._lock:
            self._session = None
            self._reassembler.reset()
            self._fragmenter.reset()
            self._outbox.clear()

    def close(self) -> None:
        """Disconnect and stop watching the band (idempotent)."""
        self.disconnect()
        if self._unsubscribe_band is not None:
            self._unsubscribe_band()
            self._unsubscribe_band = None

    # -- messages ------------------------------------------------------------------------------

    def _drain(self) -> list[bytes]:
        out, self._outbox = self._outbox, []
        if out and logger.isEnabledFor(TRAFFIC):
            for fragment in out:
                logger.log(TRAFFIC, "SEND %s", fragment.hex())
        return out

    def _queue(self, data: bytes) -> None:
        self._outbox.extend(self._fragmenter.fragment(data))

    def _send_plain(self, response: Response) -> None:
        self._queue(encode_message(response))

    def _send(self, message: Response | Event, sealed: bool) -> None:
        data = encode_message(message)
        if isinstance(message, Response) and len(data) > (MAX_PLAINTEXT if sealed else MAX_MESSAGE):
            logger.error("response to command %#x too large (%d bytes)", message.command, len(data))
            data = encode_message(Response(message.request_id, message.command,
                                           StatusCode.INTERNAL_ERROR, version=message.version))
        if not sealed:
            self._queue(data)
            return
        assert self._session is not None
        self._queue(encode_message(self._session.records.seal(data)))

    def _refuse_connection(self, status: StatusCode, detail: str, body: Body | None = None) -> None:
        """A framing, decoding or record error: close any session, say so in plain with request
        id 0 (§4, §7.5). A plain response with id 0 always means: no session now."""
        if self._session is not None:
            logger.info("management session closed: %s", detail)
        self._session = None
        self._send_plain(Response(0, 0, status, body or {}, detail))

    def _on_message(self, data: bytes) -> None:
        try:
            message = decode_message(data)
        except MessageError as exc:
            self._refuse_connection(exc.status, exc.detail)
            return
        if isinstance(message, Record):
            self._on_record(message)
        elif not isinstance(message, Request):
            self._refuse_connection(StatusCode.INVALID_MESSAGE,
                                    "a host sends requests and records only")
        elif message.version not in SUPPORTED_VERSIONS:
            self._send_plain(Response(message.request_id, message.command,
                                      StatusCode.UNSUPPORTED_VERSION,
                                      {1: list(SUPPORTED_VERSIONS)}, "unsupported version"))
        elif message.command == Command.HELLO:
            self._hello(message)
        elif message.command == Command.GET_INFO:
            self._execute(message, sealed=False)
        else:
            self._send_plain(Response(message.request_id, message.command,
                                      StatusCode.SESSION_REQUIRED, detail="needs a secure session"))

    def _on_record(self, record: Record) -> None:
        session = self._session
        if session is None:
            self._send_plain(Response(0, 0, StatusCode.SESSION_REQUIRED, detail="no session"))
            return
        try:
            plaintext = session.records.open(record)
        except SecureSessionError as exc:
            self._refuse_connection(exc.status, str(exc))
            return
        try:
            inner = decode_message(plaintext)
        except MessageError as exc:
            self._send(Response(0, 0, exc.status, detail=exc.detail, version=session.version),
                       sealed=True)
            return
        if not isinstance(inner, Request) or inner.version != session.version or (
            inner.command == Command.HELLO
        ):
            request_id = inner.request_id if isinstance(inner, Request) else 0
            self._send(Response(request_id, 0, StatusCode.INVALID_MESSAGE,
                                detail="a record carries a request of the session's version, "
                                "never HELLO", version=session.version), sealed=True)
            return
        self._execute(inner, sealed=True)

    def _hello(self, request: Request) -> None:
        self._session = None  # any HELLO ends the current session (§7.2)
        try:
            hello = answer_hello(request.body, self._identity_key, self._chain,
                                 self._capabilities_bytes, SUPPORTED_VERSIONS, self._rng)
        except SecureSessionError as exc:
            body: Body = {}
            if exc.status == StatusCode.UNSUPPORTED_VERSION:
                body = {1: list(SUPPORTED_VERSIONS)}
            self._send_plain(Response(request.request_id, Command.HELLO, exc.status, body,
                                      str(exc)))
            return
        self._send_plain(Response(request.request_id, Command.HELLO, StatusCode.OK, hello.body))
        self._session = SessionState(RecordLayer(hello.keys, Side.BAND, hello.version),
                                     hello.version)
        logger.info("management session %s open", hello.keys.session_id.hex())

    def _execute(self, request: Request, *, sealed: bool) -> None:
        status, body, detail = self._commands.run(request.command, request.body)
        version = self._session.version if sealed and self._session else request.version
        self._send(Response(request.request_id, request.command, status, body, detail, version),
                   sealed=sealed)
        if request.command == Command.CLOSE_SESSION and sealed and status == StatusCode.OK:
            self._session = None

    # -- pushed events (§9) --------------------------------------------------------------------

    def _index_of(self, event: BandEvent) -> int:
        events = self.band.events
        for index in range(len(events) - 1, -1, -1):
            if events[index] is event:
                return index
        return len(events) - 1

    def _on_band_event(self, event: BandEvent) -> None:
        with self._lock:
            self._activity.track(event)
            session = self._session
            if session is None:
                return
            deliver = event.kind in session.subscribed or (
                session.watch_capture and event.kind in _CAPTURE_KINDS
            )
            if session.watch_capture and event.kind == EventKind.ENROLLMENT and (
                event.data.get("state") != EnrollmentState.CAPTURING
            ):
                session.watch_capture = False
            if not deliver:
                return
            try:
                self._send(Event(encode_event(self._index_of(event), event), session.version),
                           sealed=True)
            except Exception:  # never into the firmware model's code path
                logger.exception("band event %s cannot be pushed", event.kind)
                return
            if not self._in_receive and self.on_pending is not None:
                self.on_pending()
