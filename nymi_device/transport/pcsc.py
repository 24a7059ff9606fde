"""PC/SC on pyscard: readers, waiting for a band to arrive or leave, connections with a trace.

Any PC/SC reader works the same: a USB contactless reader on a real machine, or pcscd's vpcd
virtual reader on which the simulator taps bands ("Virtual PCD 00 00")::

    reader = wait_for_card("", timeout=10)           # first reader that holds a card
    with open_connection(reader.name) as card:
        print(card.get_uid().hex())

    device = open_ctap_pcsc("Virtual PCD")           # python-fido2's CtapPcscDevice, unchanged

A reader is named by a case-sensitive substring of its PC/SC name; the empty name means the
first reader holding a card. Every APDU is logged at the :data:`~nymi_device.protocol.TRAFFIC`
level (``SEND``/``RECV`` hex). Failures are :class:`~nymi_device.errors.BandUnreachableError`
with a reason: ``NO_ADAPTER`` when there is no PC/SC service or no such reader,
``NOT_ON_READER`` when no band is on it (or it was taken away mid-exchange),
``UNSUPPORTED`` when the card is not a FIDO authenticator, ``TRANSPORT_FAILED`` otherwise.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

from fido2.pcsc import CtapPcscDevice
from smartcard import scard
from smartcard.CardConnectionDecorator import CardConnectionDecorator
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.pcsc.PCSCReader import PCSCReader

from nymi_device.errors import BandUnreachableError, InvalidTargetError, UnreachableReason
from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.apdu import SW, CommandApdu, ResponseApdu

__all__ = [
    "PcscConnection",
    "ReaderState",
    "TracingConnection",
    "find_reader",
    "list_readers",
    "open_connection",
    "open_ctap_pcsc",
    "wait_for_card",
]

logger = logging.getLogger(__name__)

_E_NO_SERVICE = 0x8010001D
_E_SERVICE_STOPPED = 0x8010001E
_E_NO_READERS = 0x8010002E
_E_TIMEOUT = 0x8010000A
_E_UNKNOWN_READER = 0x80100009
_E_READER_UNAVAILABLE = 0x80100017
_E_NO_SMARTCARD = 0x8010000C
_W_REMOVED_CARD = 0x80100069
_W_RESET_CARD = 0x80100068
_W_UNRESPONSIVE_CARD = 0x80100066
_GONE = frozenset((_E_NO_SMARTCARD, _W_REMOVED_CARD, _W_RESET_CARD, _W_UNRESPONSIVE_CARD))
_NO_SERVICE = frozenset((_E_NO_SERVICE, _E_SERVICE_STOPPED))
_MAX_WAIT_STEP_S = 0.25
#: After a failed exchange, how long to give pcscd to notice that the card left (it polls
#: readers without card-change interrupts every 400 ms).
_REMOVAL_NOTICE_S = 1.0


def _code(hresult: int) -> int:
    return hresult & 0xFFFFFFFF


def _message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult)} (0x{_code(hresult):08X})"


@dataclass(frozen=True)
class ReaderState:
    """One PC/SC reader as seen now."""

    name: str
    has_card: bool
    atr: bytes | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "has_card": self.has_card,
                "atr": self.atr.hex().upper() if self.atr else None}


# -- the PC/SC context ---------------------------------------------------------------------------

@contextmanager
def _context() -> Iterator[Any]:
    hresult, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if hresult != scard.SCARD_S_SUCCESS:
        if _code(hresult) in _NO_SERVICE:
            raise BandUnreachableError("no PC/SC service: pcscd is not running (start it with "
                                       "'sudo systemctl start pcscd', or let 'nymi-sim serve "
                                       "--vpcd' start one for a simulated band)",
                                       UnreachableReason.NO_ADAPTER)
        raise BandUnreachableError(f"cannot reach the PC/SC service: {_message(hresult)}",
                                   UnreachableReason.NO_ADAPTER)
    try:
        yield context
    finally:
        scard.SCardReleaseContext(context)


def _reader_names(context: Any) -> list[str]:
    hresult, names = scard.SCardListReaders(context, [])
    if _code(hresult) == _E_NO_READERS:
        return []
    if hresult != scard.SCARD_S_SUCCESS:
        if _code(hresult) in _NO_SERVICE:
            raise BandUnreachableError("the PC/SC service stopped", UnreachableReason.NO_ADAPTER)
        raise BandUnreachableError(f"cannot list PC/SC readers: {_message(hresult)}",
                                   UnreachableReason.NO_ADAPTER)
    return [str(name) for name in names]


def _states(context: Any, names: Sequence[str]) -> tuple[list[ReaderState], dict[str, int]]:
    """The readers' states now, and their raw event states (for :func:`_wait_change`)."""
    if not names:
        return [], {}
    request = [(name, scard.SCARD_STATE_UNAWARE) for name in names]
    hresult, answers = scard.SCardGetStatusChange(context, 0, request)
    if hresult != scard.SCARD_S_SUCCESS:
        if _code(hresult) in (_E_UNKNOWN_READER, _E_READER_UNAVAILABLE, _E_TIMEOUT):
            return [], {}  # a reader went away meanwhile: the caller lists again
        raise BandUnreachableError(f"cannot read the PC/SC reader state: {_message(hresult)}",
                                   UnreachableReason.NO_ADAPTER)
    states: list[ReaderState] = []
    current: dict[str, int] = {}
    for name, event, atr in answers:
        present = bool(event & scard.SCARD_STATE_PRESENT) and not (
            event & scard.SCARD_STATE_MUTE)
        states.append(ReaderState(str(name), present, bytes(atr) if present and atr else None))
        current[str(name)] = int(event) & ~scard.SCARD_STATE_CHANGED
    return states, current


def _wait_change(context: Any, current: dict[str, int], timeout_s: float) -> None:
    """Block until a reader's state differs from ``current``, or ``timeout_s`` passes."""
    if not current:
        time.sleep(timeout_s)
        return
    request = list(current.items())
    scard.SCardGetStatusChange(context, int(timeout_s * 1000), request)


def list_readers() -> list[ReaderState]:
    """Every PC/SC reader, with whether it holds a card and the card's ATR.

    :raises BandUnreachableError: ``NO_ADAPTER`` when there is no PC/SC service.
    """
    with _context() as context:
        return _states(context, _reader_names(context))[0]


def _match(states: Sequence[ReaderState], name: str) -> list[ReaderState]:
    if not name:
        return [s for s in states if s.has_card]
    return [s for s in states if name in s.name]


def find_reader(name: str = "") -> ReaderState:
    """The reader whose PC/SC name contains ``name`` (empty: the first one holding a card).

    When several readers match, one holding a card is preferred.

    :raises BandUnreachableError: ``NO_ADAPTER`` when there is no such reader (or none at
        all); ``NOT_ON_READER`` when ``name`` is empty and no reader holds a card.
    """
    states = list_readers()
    return _pick(states, name)


def _pick(states: Sequence[ReaderState], name: str) -> ReaderState:
    if not states:
        raise BandUnreachableError("no PC/SC reader is connected (plug one in; "
                                   "'nymi-band nfc readers' lists them)",
                                   UnreachableReason.NO_ADAPTER)
    found = _match(states, name)
    if found:  # several readers may match ("Virtual PCD"): the one holding a card first
        return sorted(found, key=lambda s: not s.has_card)[0]
    if not name:
        raise BandUnreachableError("no band on any PC/SC reader (tap the worn band on "
                                   "one; 'nymi-band nfc readers' lists them)",
                                   UnreachableReason.NOT_ON_READER)
    known = ", ".join(s.name for s in states)
    raise BandUnreachableError(f"no PC/SC reader matching {name!r} (readers: {known}; "
                               "pcsc: alone takes the first reader holding a band)",
                               UnreachableReason.NO_ADAPTER)


def wait_for_card(
    name: str = "", *, timeout: float, present: bool = True,
    on_wait: Callable[[Sequence[ReaderState]], None] | None = None,
) -> ReaderState:
    """Wait until a band is on the reader (``present``), or until it has left (not ``present``).

    :param name: reader name substring; empty = any reader.
    :param timeout: seconds; 0 checks once.
    :param on_wait: called with the reader states each time they are looked at.
    :return: the reader the band arrived on, or (when leaving) the reader it left.
    :raises BandUnreachableError: ``NOT_ON_READER`` when no band arrived in time, or
        ``TRANSPORT_FAILED`` when it did not leave in time; ``NO_ADAPTER`` as :func:`find_reader`.
    """
    deadline = time.monotonic() + max(timeout, 0.0)
    with _context() as context:
        while True:
            states, current = _states(context, _reader_names(context))
            if on_wait is not None:
                on_wait(states)
            matching = _match(states, name) if name else list(states)
            if name and states and not matching:
                _pick(states, name)  # raises: no such reader
            if present:
                holding = [s for s in matching if s.has_card]
                if holding:
                    return holding[0]
            elif not any(s.has_card for s in matching):
                return matching[0] if matching else ReaderState(name, False)
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            _wait_change(context, current, min(remaining, _MAX_WAIT_STEP_S))
    if not states:
        raise BandUnreachableError("no PC/SC reader is connected (plug one in; "
                                   "'nymi-band nfc readers' lists them)",
                                   UnreachableReason.NO_ADAPTER)
    where = f"reader {name!r}" if name else "any PC/SC reader"
    if present:
        raise BandUnreachableError(f"no band on {where} within {timeout:g} s",
                                   UnreachableReason.NOT_ON_READER)
    raise BandUnreachableError(f"the band was not taken off {where} within {timeout:g} s",
                               UnreachableReason.TRANSPORT_FAILED)


# -- connections ---------------------------------------------------------------------------------

class TracingConnection(CardConnectionDecorator):  # type: ignore[misc]
    """A pyscard connection that logs every APDU and raises :class:`BandUnreachableError`.

    python-fido2's ``CtapPcscDevice`` takes it as its connection, unchanged.
    """

    def __init__(self, connection: Any, reader: str) -> None:
        super().__init__(connection)
        self.reader = reader

    def _unreachable(self, exc: Exception, doing: str) -> BandUnreachableError:
        hresult = _code(int(getattr(exc, "hresult", -1)))
        if hresult in _NO_SERVICE:
            return BandUnreachableError(f"the PC/SC service went away while {doing}",
                                        UnreachableReason.NO_ADAPTER)
        if isinstance(exc, NoCardException) or hresult in _GONE or self._card_left():
            return BandUnreachableError(f"no band on {self.reader} ({doing})",
                                        UnreachableReason.NOT_ON_READER)
        return BandUnreachableError(f"{doing} on {self.reader} failed: {exc}",
                                    UnreachableReason.TRANSPORT_FAILED)

    def _card_left(self) -> bool:
        """After a failed exchange: whether the band has left (pcscd notices within a poll)."""
        try:
            wait_for_card(self.reader, timeout=_REMOVAL_NOTICE_S, present=False)
        except BandUnreachableError:
            return False
        return True

    def connect(self, protocol: Any = None, mode: Any = None, disposition: Any = None) -> None:
        try:
            super().connect(protocol, mode, disposition)
        except (CardConnectionException, NoCardException) as exc:
            raise self._unreachable(exc, "connecting") from None

    def disconnect(self) -> None:
        """Disconnect and release the PC/SC context: a closed connection is not reused."""
        try:
            super().disconnect()
        except Exception:  # the card or the service may already be gone
            logger.debug("disconnect from %s failed", self.reader, exc_info=True)
        self.release()

    def release(self) -> None:
        try:
            super().release()
        except Exception:
            logger.debug("release of the PC/SC context for %s failed", self.reader,
                         exc_info=True)

    def transmit(self, command: list[int], protocol: Any = None) -> tuple[list[int], int, int]:
        logger.log(TRAFFIC, "SEND: %s", bytes(command).hex())
        try:
            data, sw1, sw2 = super().transmit(command, protocol)
        except CardConnectionException as exc:
            raise self._unreachable(exc, "exchanging an APDU") from None
        logger.log(TRAFFIC, "RECV: %s SW=%02X%02X", bytes(data).hex(), sw1, sw2)
        return list(data), int(sw1), int(sw2)


class PcscConnection:
    """An open connection to the card on one reader.

    :ivar reader: the reader's PC/SC name.
    """

    def __init__(self, reader: str) -> None:
        self.reader = reader
        self._connection = TracingConnection(PCSCReader(reader).createConnection(), reader)
        try:
            self._connection.connect()
        except BandUnreachableError:
            self._connection.release()
            raise

    @property
    def connection(self) -> TracingConnection:
        """The pyscard connection (e.g. for ``fido2.pcsc.CtapPcscDevice``)."""
        return self._connection

    @property
    def atr(self) -> bytes:
        return bytes(self._connection.getATR() or b"")

    def transmit(self, apdu: bytes | CommandApdu) -> ResponseApdu:
        """One command APDU, one response APDU (no GET RESPONSE following)."""
        data, sw1, sw2 = self._connection.transmit(list(bytes(apdu)))
        return ResponseApdu(bytes(data), sw1 << 8 | sw2)

    def exchange(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command``; follow ``61xx`` with GET RESPONSE and ``6Cxx`` with the right Le."""
        response = self.transmit(command)
        if response.sw1 == 0x6C and command.le is not None:
            command = CommandApdu(command.cla, command.ins, command.p1, command.p2,
                                  command.data, response.sw2 or 256)
            response = self.transmit(command)
        data = response.data
        while response.sw1 == 0x61:
            response = self.transmit(CommandApdu(0x00, 0xC0, 0x00, 0x00, le=response.sw2 or 256))
            data += response.data
        return ResponseApdu(data, response.sw)

    def get_uid(self) -> bytes | None:
        """The card's UID through the reader (PC/SC GET DATA ``FF CA 00 00 00``)."""
        response = self.exchange(CommandApdu(0xFF, 0xCA, 0x00, 0x00, le=256))
        return response.data if response.sw == SW.OK else None

    def close(self) -> None:
        self._connection.disconnect()

    def __enter__(self) -> PcscConnection:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()


def open_connection(name: str = "", *, timeout: float = 0.0) -> PcscConnection:
    """Connect to the band on the reader named by ``name`` (see :func:`find_reader`).

    :param timeout: seconds to wait for a band to arrive first (0: it must be there now).
    """
    reader = wait_for_card(name, timeout=timeout) if timeout > 0 else find_reader(name)
    if not reader.has_card:
        raise BandUnreachableError(f"no band on {reader.name}", UnreachableReason.NOT_ON_READER)
    return PcscConnection(reader.name)


def open_ctap_pcsc(address: str = "", *, timeout: float = 0.0, **unknown: Any) -> CtapPcscDevice:
    """python-fido2's ``CtapPcscDevice`` on the band on reader ``address`` (``pcsc:`` target).

    :param address: reader name substring; empty = the first reader holding a card.
    :param timeout: seconds to wait for a band to be tapped.
    :raises BandUnreachableError: as :func:`open_connection`; ``UNSUPPORTED`` when the card
        has no FIDO applet.
    """
    if unknown:
        raise InvalidTargetError(f"unknown pcsc option(s): {', '.join(sorted(unknown))}")
    reader = wait_for_card(address, timeout=timeout) if timeout > 0 else find_reader(address)
    if not reader.has_card:
        raise BandUnreachableError(f"no band on {reader.name}", UnreachableReason.NOT_ON_READER)
    connection = TracingConnection(PCSCReader(reader.name).createConnection(), reader.name)
    try:
        return CtapPcscDevice(cast(Any, connection), reader.name)
    except BaseException as exc:
        connection.disconnect()
        if not isinstance(exc, ValueError):
            raise
        raise BandUnreachableError(f"the card on {reader.name} is not a FIDO authenticator "
                                   f"({exc})", UnreachableReason.UNSUPPORTED) from None
