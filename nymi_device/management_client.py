"""The host's side of the band management protocol (docs/protocol.md), over any fragment carrier.

:class:`ManagementClient` is transport-free and asyncio-native: it writes each fragment with the
``send`` coroutine it was given (a GATT write to Management Request) and is handed each
notification of Management Notify through :meth:`ManagementClient.feed`. It sets up the secure
session (§7: the band's certificate must chain to ``trusted_ca``), then runs the commands of §8,
one typed method each, and delivers pushed events (§9) through :meth:`ManagementClient.events`.

Errors: a refusal raises :class:`~nymi_device.errors.BandCommandError`; a failed or broken session
raises :class:`~nymi_device.errors.SecureSessionError` and needs a new :meth:`handshake`; no
answer within ``timeout`` raises :class:`~nymi_device.errors.BandUnreachableError`.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509

from nymi_device.errors import (
    BandCommandError,
    BandUnreachableError,
    SecureSessionError,
    StatusCode,
    UnreachableReason,
)
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.management import (
    MAX_REQUEST_ID,
    PLAIN_COMMANDS,
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
from nymi_device.protocol.management_bodies import (
    BodyReader,
    EventLogPage,
    LoggedEvent,
    PolicySettings,
    WipeStatus,
    decode_event,
    decode_event_log_page,
    decode_info,
    decode_status,
    decode_wipe_status,
    encode_policy,
)
from nymi_device.protocol.management_frames import (
    DEFAULT_ATT_MTU,
    Fragmenter,
    FrameError,
    Reassembler,
)
from nymi_device.protocol.management_session import (
    HostHandshake,
    RecordLayer,
    SessionInfo,
    Side,
)
from nymi_device.protocol.model import AuthState, BandInfo, BandStatus, EventKind

__all__ = ["ManagementClient", "load_trusted_ca"]

logger = logging.getLogger(__name__)

Send = Callable[[bytes], Awaitable[None]]
_KINDS = frozenset(kind.value for kind in EventKind)


def load_trusted_ca(path: Path | str) -> x509.Certificate:
    """The CA certificate (PEM) a host trusts to vouch for band identities (§7.1)."""
    return x509.load_pem_x509_certificate(Path(path).read_bytes())


@dataclass
class _Pending:
    future: asyncio.Future[Response]
    sealed: bool
    command: int


class ManagementClient:
    """One connection's management client (docs/protocol.md §3-§10).

    :param send: writes one fragment to the band (a GATT write to Management Request).
    :param trusted_ca: the root that must vouch for the band's identity certificate.
    :param mtu: the connection's ATT_MTU; a write carries at most ``min(mtu - 3, 512)`` bytes.
    :param timeout: seconds to wait for each response.

    Call :meth:`feed` with every notification, on the event loop's thread.
    """

    def __init__(
        self,
        send: Send,
        trusted_ca: x509.Certificate,
        mtu: int = DEFAULT_ATT_MTU,
        *,
        timeout: float = 5.0,
        versions: Sequence[int] = SUPPORTED_VERSIONS,
        rng: Callable[[int], bytes] = os.urandom,
    ) -> None:
        self._send = send
        self.trusted_ca = trusted_ca
        self.timeout = timeout
        self._versions = tuple(versions)
        self._rng = rng
        self._fragmenter = Fragmenter(mtu)
        self._reassembler = Reassembler()
        self._send_lock = asyncio.Lock()
        self._pending: dict[int, _Pending] = {}
        self._next_id = 1
        self._records: RecordLayer | None = None
        self._session: SessionInfo | None = None
        #: Why the last session ended abnormally (replay, tampering, ...), for diagnostics.
        self.session_error: SecureSessionError | None = None
        self._events: asyncio.Queue[LoggedEvent | None] = asyncio.Queue()
        self._closed = False

    # -- the carrier's interface ---------------------------------------------------------------

    @property
    def mtu(self) -> int:
        return self._fragmenter.att_mtu

    @mtu.setter
    def mtu(self, value: int) -> None:
        self._fragmenter.att_mtu = value

    @property
    def session(self) -> SessionInfo | None:
        """The open session (the band's verified identity and capabilities), or ``None``."""
        return self._session

    def feed(self, fragment: bytes) -> None:
        """Take one notification from the band. Never raises: errors fail pending requests."""
        if logger.isEnabledFor(TRAFFIC):
            logger.log(TRAFFIC, "RECV %s", bytes(fragment).hex())
        for item in self._reassembler.push(fragment):
            if isinstance(item, FrameError):
                self._break(SecureSessionError(item.status, f"from the band: {item.reason}"))
            else:
                self._on_message(item)

    def disconnect(self) -> None:
        """The link dropped: fail what is pending, forget the session and any partial message."""
        self._records = self._session = None
        self._reassembler.reset()
        self._fragmenter.reset()
        self._fail_pending(BandUnreachableError("the band disconnected",
                                                UnreachableReason.TRANSPORT_FAILED))

    async def aclose(self) -> None:
        """End the session politely (if any), disconnect, and end :meth:`events`."""
        if self._records is not None:
            try:
                await self._request(Command.CLOSE_SESSION, sealed=True)
            except (BandCommandError, BandUnreachableError) as exc:
                logger.debug("CLOSE_SESSION failed: %s", exc)
        self.disconnect()
        self._closed = True
        self._events.put_nowait(None)

    # -- receiving -----------------------------------------------------------------------------

    def _on_message(self, data: bytes) -> None:
        try:
            message = decode_message(data)
        except MessageError as exc:
            self._break(SecureSessionError(exc.status, f"from the band: {exc.detail}"))
            return
        if isinstance(message, Record):
            self._on_record(message)
        elif isinstance(message, Response):
            if message.request_id == 0:
                self._on_connection_error(message)
            else:
                self._resolve(message, sealed=False)
        else:
            logger.warning("ignored a plain %s from the band", type(message).__name__)

    def _on_record(self, record: Record) -> None:
        if self._records is None:
            logger.warning("ignored a record outside a session")
            return
        try:
            inner = decode_message(self._records.open(record))
        except SecureSessionError as exc:
            self._break(exc)
            return
        except MessageError as exc:
            self._break(SecureSessionError(exc.status, f"from the band: {exc.detail}"))
            return
        if isinstance(inner, Event):
            self._on_event(inner)
        elif isinstance(inner, Response) and inner.request_id != 0:
            self._resolve(inner, sealed=True)
        elif isinstance(inner, Response):
            self._fail_pending(BandCommandError(inner.status, inner.detail or ""))
        else:
            self._break(SecureSessionError(StatusCode.INVALID_MESSAGE, "a request from the band"))

    def _on_event(self, event: Event) -> None:
        try:
            logged = decode_event(event.body)
        except MessageError as exc:
            logger.warning("ignored a malformed event: %s", exc.detail)
            return
        if logged is not None:
            self._events.put_nowait(logged)

    def _on_connection_error(self, response: Response) -> None:
        """A plain response with request id 0 (§4, §7.5): the band holds no session now."""
        detail = f"from the band: {response.detail or StatusCode(response.status).name.lower()}"
        self._break(SecureSessionError(response.status, detail))

    def _resolve(self, response: Response, *, sealed: bool) -> None:
        pending = self._pending.get(response.request_id)
        if pending is None or pending.sealed != sealed or pending.command != response.command:
            # A plain answer never settles a sealed request: it could come from anyone.
            logger.warning("ignored an unexpected response to request %d", response.request_id)
            return
        del self._pending[response.request_id]
        if not pending.future.done():
            pending.future.set_result(response)

    def _break(self, error: SecureSessionError) -> None:
        if self._records is not None:
            logger.warning("management session closed: %s", error)
            self.session_error = error
        self._records = self._session = None
        self._fail_pending(error)

    def _fail_pending(self, error: Exception) -> None:
        pending, self._pending = self._pending, {}
        for item in pending.values():
            if not item.future.done():
                item.future.set_exception(error)

    # -- requests ------------------------------------------------------------------------------

    async def _request(self, command: Command, body: Body | None = None, *,
                       sealed: bool = True) -> Body:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Response] = loop.create_future()
        async with self._send_lock:
            if not sealed and command not in PLAIN_COMMANDS:
                raise SecureSessionError(StatusCode.SESSION_REQUIRED, f"{command.name} is sealed")
            if sealed and self._records is None:
                raise SecureSessionError(StatusCode.SESSION_REQUIRED,
                                         "no management session: call handshake() first")
            if sealed and self._session and not self._session.capabilities.supports(command):
                raise BandCommandError(StatusCode.UNSUPPORTED_COMMAND,
                                       f"the band does not offer {command.name}")
            request_id = self._next_id
            self._next_id = request_id % MAX_REQUEST_ID + 1
            version = self._session.version if sealed and self._session else SUPPORTED_VERSIONS[0]
            data = encode_message(Request(request_id, command, body or {}, version))
            if sealed:
                assert self._records is not None
                data = encode_message(self._records.seal(data))
            self._pending[request_id] = _Pending(future, sealed, command)
            try:
                for fragment in self._fragmenter.fragment(data):
                    if logger.isEnabledFor(TRAFFIC):
                        logger.log(TRAFFIC, "SEND %s", fragment.hex())
                    await self._send(fragment)
            except BaseException:
                self._pending.pop(request_id, None)
                raise
        try:
            response = await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            raise BandUnreachableError(
                f"no answer to {command.name} within {self.timeout} s",
                UnreachableReason.TRANSPORT_FAILED,
            ) from None
        finally:
            self._pending.pop(request_id, None)
        if response.status != StatusCode.OK:
            raise BandCommandError(response.status, response.detail or "")
        return response.body

    async def handshake(self, *, expected_serial: str | None = None) -> SessionInfo:
        """Open a secure session (§7.2): the band proves its identity; returns what it proved."""
        self._records = self._session = None
        self._fail_pending(SecureSessionError(StatusCode.SESSION_REQUIRED, "a new handshake began"))
        hello = HostHandshake(self.trusted_ca, self._versions, self._rng)
        try:
            body = await self._request(Command.HELLO, hello.hello_body(), sealed=False)
        except SecureSessionError:
            raise
        except BandCommandError as exc:
            raise SecureSessionError(exc.raw_status, str(exc)) from None
        info, keys = hello.finish(body)
        if expected_serial is not None and info.serial != expected_serial:
            raise SecureSessionError(StatusCode.UNTRUSTED_BAND,
                                     f"the band proved serial {info.serial}, not {expected_serial}")
        self._records = RecordLayer(keys, Side.HOST, info.version)
        self._session = info
        logger.info("management session %s with %s", info.session_id, info.serial)
        return info

    # -- §8 commands ---------------------------------------------------------------------------

    async def identity(self) -> BandInfo:
        """GET_INFO (§8.1): sealed inside a session, plain (unauthenticated) before one."""
        return decode_info(await self._request(Command.GET_INFO,
                                               sealed=self._records is not None))

    async def status(self) -> BandStatus:
        return decode_status(await self._request(Command.GET_STATUS))

    async def close_session(self) -> None:
        await self._request(Command.CLOSE_SESSION)
        self._records = self._session = None

    async def enter_setup_code(self, code: str) -> None:
        """The code the band's screen shows (§8.4); ``SETUP_CODE_MISMATCH`` if it is not."""
        await self._request(Command.ENROLL_SETUP_CODE, {1: code})

    async def start_capture(self) -> int:
        """Start the fingerprint capture; the number of samples the band wants (§8.4)."""
        body = await self._request(Command.ENROLL_START_CAPTURE)
        return BodyReader(body, StatusCode.INVALID_MESSAGE, "ENROLL_START_CAPTURE").uint(1, 255)

    async def set_label(self, label: str | None) -> str | None:
        """Store the Band Label (``None``: no label); the label as the band shows it."""
        body = await self._request(Command.ENROLL_SET_LABEL, {1: label})
        return BodyReader(body, StatusCode.INVALID_MESSAGE, "ENROLL_SET_LABEL").optional_text(1)

    async def add_corporate_authenticator(self) -> None:
        await self._request(Command.ENROLL_ADD_CORPORATE_AUTHENTICATOR)

    async def set_policy(self, policy: PolicySettings) -> None:
        """Stage the policy written when enrollment finishes (§8.4)."""
        await self._request(Command.ENROLL_SET_POLICY, {1: encode_policy(policy)})

    async def finish_enrollment(self) -> None:
        await self._request(Command.ENROLL_FINISH)

    async def update_policy(self, policy: PolicySettings) -> None:
        """A later policy change; the band must be worn and authenticated (§8.5)."""
        await self._request(Command.UPDATE_POLICY, {1: encode_policy(policy)})

    async def corporate_login(self, accepted: bool = True) -> AuthState:
        """Report the wearer's directory sign-in (§8.5); the band's resulting auth state."""
        body = await self._request(Command.CORPORATE_LOGIN, {1: accepted})
        state = BodyReader(body, StatusCode.INVALID_MESSAGE, "CORPORATE_LOGIN").enum_text(
            1, AuthState)
        assert isinstance(state, AuthState)
        return state

    async def event_log(self, start: int = 0, limit: int | None = None) -> EventLogPage:
        """One page of the band's event log from index ``start`` (§8.6)."""
        body: Body = {1: start}
        if limit is not None:
            body[2] = limit
        return decode_event_log_page(await self._request(Command.GET_EVENT_LOG, body))

    async def full_event_log(self, start: int = 0) -> list[LoggedEvent]:
        """Every event from ``start`` to the end of the log, page by page."""
        events: list[LoggedEvent] = []
        while True:
            page = await self.event_log(start)
            events.extend(page.events)
            if page.complete or page.next <= start:
                return events
            start = page.next

    async def subscribe(self, kinds: Iterable[EventKind] | None = None) -> frozenset[EventKind]:
        """Have the band push events of ``kinds`` (all when ``None``); the kinds it will push."""
        body: Body = {} if kinds is None else {1: sorted(k.value for k in kinds)}
        result = BodyReader(await self._request(Command.SUBSCRIBE, body),
                            StatusCode.INVALID_MESSAGE, "SUBSCRIBE").array(1, 64)
        return frozenset(EventKind(k) for k in result if isinstance(k, str) and k in _KINDS)

    async def unsubscribe(self) -> None:
        await self._request(Command.UNSUBSCRIBE)

    async def delete_user_data_status(self) -> WipeStatus:
        """Whether the Delete User Data gesture is possible now (§8.7); the wipe itself needs
        the person to hold the band's bottom button on the charger."""
        return decode_wipe_status(await self._request(Command.GET_DELETE_USER_DATA_STATUS))

    async def events(self) -> AsyncIterator[LoggedEvent]:
        """Events the band pushes (§9), as they arrive, until :meth:`aclose`."""
        while not self._closed:
            event = await self._events.get()
            if event is None:
                return
            yield event

    def pending_events(self) -> list[LoggedEvent]:
        """Pushed events received and not yet taken, without waiting."""
        out: list[LoggedEvent] = []
        while not self._events.empty():
            event = self._events.get_nowait()
            if event is not None:
                out.append(event)
        return out

