"""The band's card operating system: ISO/IEC 7816-4 over its contactless interface.

:class:`CardOS` receives raw command APDUs from whatever carries them (the vpcd front end, an
ISO-DEP link, a test) and always answers with a response APDU: every malformed or unsupported
command gets the status word ISO/IEC 7816-4 prescribes, never an exception. What it does itself:

* **Applet registry and SELECT** by DF name (``00 A4 04 P2 Lc AID``), full or partial AID.
  P2 ``00``/``04``/``08`` return the applet's answer, ``0C`` suppresses it, "next/previous
  occurrence" finds nothing (one applet per AID). SELECT by file identifier or path: ``6A82``,
  the band has no file system. A SELECT that finds nothing leaves the current applet selected; an
  applet that refuses selection (``6982`` while the band is not authenticated) leaves none.
* **Command chaining** (CLA bit ``0x10``, §5.3.3): parts are answered ``9000`` and assembled; the
  applet sees one command. A different command in the middle of a chain gets ``6883`` (last
  command of the chain expected) and the chain is dropped. A chained GET RESPONSE: ``6884``.
* **Long answers**: when the answer exceeds Ne it is cut, ``61xx`` says how much is left, and
  ``00 C0 00 00 Le`` (GET RESPONSE) fetches the rest. Any other command drops what is left. A
  command without ``Le`` is treated as ``Le = 00`` (256; 65536 for an extended command), as
  contactless cards commonly do.
* **Reader pseudo-APDUs** (PC/SC Part 3 §3.2.2.1.3), which a real reader answers itself:
  ``FF CA 00 00 Le`` → the UID, ``FF CA 01 00 Le`` → the ATS historical bytes.
* **Interindustry CLA checks**: logical channels other than 0 → ``6881``, secure messaging →
  ``6882``; no applet selected → ``6D00`` (interindustry) or ``6E00`` (proprietary class).

Applets may answer later: :meth:`Applet.process` returns a :class:`~concurrent.futures.Future`
when work continues in another thread (the FIDO applet waiting for the wearer).
:meth:`CardOS.submit` then returns a future too, so an asyncio front end awaits it without
blocking its loop; :meth:`CardOS.transmit` is the blocking form.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from concurrent.futures import Future, InvalidStateError

from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.apdu import (
    CHAINING_BIT,
    MAX_EXTENDED_LC,
    MAX_EXTENDED_LE,
    MAX_SHORT_LE,
    SW,
    ApduFormatError,
    CommandApdu,
    ResponseApdu,
    contactless_atr,
)

__all__ = ["Answer", "Applet", "CardOS", "Pending", "reply"]

logger = logging.getLogger(__name__)

#: An answer that is not ready yet.
Pending = Future[ResponseApdu]
#: What :meth:`CardOS.submit` returns: response bytes, or a future of them.
Answer = bytes | Future[bytes]

INS_SELECT = 0xA4
INS_GET_RESPONSE = 0xC0
INS_GET_DATA = 0xCA
CLA_READER = 0xFF
P1_SELECT_BY_NAME = 0x04
_P1_SELECT_FILE = frozenset((0x00, 0x01, 0x02, 0x03, 0x08, 0x09))
_P2_NO_RESPONSE_DATA = 0x0C
_MAX_AID = 16


def reply(sw: int = SW.OK, data: bytes = b"") -> ResponseApdu:
    """A response APDU (status word first, for brevity at call sites)."""
    return ResponseApdu(data, int(sw))


class Applet(ABC):
    """One application on the card, reached by SELECT with its AID.

    Calls come from one thread at a time (the card is a serial device); :meth:`process` may hand
    work to another thread and return a future of the answer.
    """

    #: Application identifier (5..16 bytes).
    aid: bytes
    #: Short name for logs and probes.
    name: str

    @abstractmethod
    def select(self, command: CommandApdu) -> ResponseApdu:
        """Become the current applet: answer ``9000`` with the select response, or refuse."""

    def deselect(self) -> None:  # noqa: B027 - optional hook
        """Another applet was selected or the field went away: abandon any work in progress."""

    @abstractmethod
    def process(self, command: CommandApdu) -> ResponseApdu | Pending:
        """Answer one (assembled) command addressed to this applet."""

    def power_lost(self) -> None:  # noqa: B027 - optional hook
        """The reader's field went away: whatever the applet keeps in RAM is gone."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release threads or other resources; the applet is not used afterwards."""


class CardOS:
    """The card: applets, chaining, GET RESPONSE, reader pseudo-APDUs.

    :param applets: the applets to install (their AIDs must differ).
    :param uid: the UID a reader reports for ``FF CA 00 00`` (4, 7 or 10 bytes).
    :param historical_bytes: the ATS historical bytes; the PC/SC ATR is built from them.
    """

    def __init__(
        self, applets: Iterable[Applet], *, uid: bytes, historical_bytes: bytes = b""
    ) -> None:
        self._applets: list[Applet] = list(applets)
        aids = [a.aid for a in self._applets]
        if len(set(aids)) != len(aids):
            raise ValueError("two applets share an AID")
        self.uid = bytes(uid)
        self.historical_bytes = bytes(historical_bytes)
        self._atr = contactless_atr(self.historical_bytes)
        self._lock = threading.RLock()
        self._selected: Applet | None = None
        self._chain: tuple[tuple[int, int, int, int], bytearray] | None = None
        self._remainder = b""
        self._session = 0
        self._powered = True

    # -- the physical side -----------------------------------------------------------------

    @property
    def atr(self) -> bytes:
        """The ATR a PC/SC reader reports for this card (PC/SC Part 3, ISO/IEC 14443-4 form)."""
        return self._atr

    @property
    def applets(self) -> Sequence[Applet]:
        return tuple(self._applets)

    @property
    def selected(self) -> Applet | None:
        return self._selected

    def power_on(self) -> None:
        """The reader's field came up (or the reader powered the card)."""
        with self._lock:
            self._reset_state()
            self._powered = True

    def power_off(self) -> None:
        """The field went away: everything volatile is lost, running work is abandoned."""
        with self._lock:
            self._reset_state()
            self._powered = False
            for applet in self._applets:
                applet.power_lost()

    def reset(self) -> None:
        """A reset from the reader: the field drops and comes back (power off, then on)."""
        self.power_off()
        self.power_on()

    def close(self) -> None:
        """Power off and release the applets' resources."""
        self.power_off()
        for applet in self._applets:
            applet.close()

    def _reset_state(self) -> None:
        self._session += 1
        self._chain = None
        self._remainder = b""
        if self._selected is not None:
            self._selected.deselect()
            self._selected = None

    # -- APDUs ---------------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """Answer one command APDU, waiting for work that continues in another thread."""
        answer = self.submit(apdu)
        return answer.result() if isinstance(answer, Future) else answer

    def submit(self, apdu: bytes) -> Answer:
        """Answer one command APDU: the response bytes, or a future of them."""
        logger.log(TRAFFIC, "card <- %s", apdu.hex())
        with self._lock:
            if not self._powered:
                self._reset_state()
                self._powered = True
            try:
                answer = self._handle(apdu)
            except Exception:  # a bug must not take the card off the air
                logger.exception("card OS failed on APDU %s", apdu.hex())
                self._chain = None
                self._remainder = b""
                answer = reply(SW.NO_PRECISE_DIAGNOSIS).encode()
        if isinstance(answer, bytes):
            logger.log(TRAFFIC, "card -> %s", answer.hex())
        return answer

    def _handle(self, raw: bytes) -> Answer:
        try:
            command = CommandApdu.parse(raw)
        except ApduFormatError:
            self._chain = None
            self._remainder = b""
            return reply(SW.WRONG_LENGTH).encode()
        if command.cla == CLA_READER:
            return self._reader_command(command).encode()
        if command.ins == INS_GET_RESPONSE and not command.proprietary:
            return self._get_response(command).encode()
        self._remainder = b""
        if not command.proprietary:
            if command.secure_messaging:
                self._chain = None
                return reply(SW.SECURE_MESSAGING_NOT_SUPPORTED).encode()
            if command.channel:
                self._chain = None
                return reply(SW.LOGICAL_CHANNEL_NOT_SUPPORTED).encode()
        assembled = self._assemble(command)
        if isinstance(assembled, ResponseApdu):
            return assembled.encode()
        ne = assembled.le or (MAX_EXTENDED_LE if assembled.extended else MAX_SHORT_LE)
        if assembled.ins == INS_SELECT and not assembled.proprietary:
            return self._finish(self._select(assembled), ne)
        applet = self._selected
        if applet is None:
            sw = SW.CLA_NOT_SUPPORTED if assembled.proprietary else SW.INS_NOT_SUPPORTED
            return reply(sw).encode()
        answer = applet.process(assembled)
        if isinstance(answer, ResponseApdu):
            return self._finish(answer, ne)
        return self._later(answer, ne)

    def _assemble(self, command: CommandApdu) -> CommandApdu | ResponseApdu:
        """Follow command chaining; the whole command once its last part has arrived."""
        header = (command.cla & ~CHAINING_BIT, command.ins, command.p1, command.p2)
        chain = self._chain
        if chain is not None:
            if header != chain[0]:
                self._chain = None
                return reply(SW.LAST_COMMAND_OF_CHAIN_EXPECTED)
            chain[1].extend(command.data)
            if len(chain[1]) > MAX_EXTENDED_LC:
                self._chain = None
                return reply(SW.WRONG_LENGTH)
            if command.chained:
                return reply()
            self._chain = None
            data = bytes(chain[1])
            return CommandApdu(*header, data, command.le, command.extended)
        if command.chained:
            self._chain = (header, bytearray(command.data))
            return reply()
        return command

    def _finish(self, answer: ResponseApdu, ne: int) -> bytes:
        """Cut a long successful answer to Ne bytes and keep the rest for GET RESPONSE."""
        if answer.sw != SW.OK or len(answer.data) <= ne:
            return answer.encode()
        self._remainder = answer.data[ne:]
        return answer.data[:ne] + self._more_sw()

    def _more_sw(self) -> bytes:
        return bytes((0x61, min(len(self._remainder), 256) & 0xFF))

    def _later(self, pending: Pending, ne: int) -> Future[bytes]:
        """A future of the encoded answer, cut to Ne like an immediate one."""
        out: Future[bytes] = Future()
        session = self._session

        def done(future: Pending) -> None:
            try:
                answer = future.result()
            except Exception:
                logger.exception("applet failed to answer")
                answer = reply(SW.NO_PRECISE_DIAGNOSIS)
            with self._lock:
                if session == self._session:
                    encoded = self._finish(answer, ne)
                else:  # the field went away meanwhile: nobody will fetch a remainder
                    encoded = answer.encode()
            logger.log(TRAFFIC, "card -> %s", encoded.hex())
            with contextlib.suppress(InvalidStateError):  # the caller gave up (card removed)
                out.set_result(encoded)

        pending.add_done_callback(done)
        return out

    # -- commands of the card OS itself ----------------------------------------------------

    def _get_response(self, command: CommandApdu) -> ResponseApdu:
        if command.chained or self._chain is not None:
            self._chain = None
            self._remainder = b""
            sw = SW.CHAINING_NOT_SUPPORTED if command.chained else SW.LAST_COMMAND_OF_CHAIN_EXPECTED
            return reply(sw)
        if command.p1 or command.p2:
            return reply(SW.WRONG_P1P2)
        if command.le is None or command.data:
            return reply(SW.WRONG_LENGTH)
        if not self._remainder:
            return reply(SW.CONDITIONS_NOT_SATISFIED)
        chunk, self._remainder = self._remainder[:command.le], self._remainder[command.le:]
        if self._remainder:
            return ResponseApdu(chunk, int.from_bytes(self._more_sw(), "big"))
        return reply(SW.OK, chunk)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        if command.p1 != P1_SELECT_BY_NAME:
            return reply(SW.FILE_NOT_FOUND if command.p1 in _P1_SELECT_FILE else SW.WRONG_P1P2)
        if command.p2 & ~0x0F:
            return reply(SW.WRONG_P1P2)
        name = command.data
        if len(name) > _MAX_AID:
            return reply(SW.WRONG_DATA)
        if not name or command.p2 & 0x03:  # the master file, or a next/previous occurrence
            return reply(SW.FILE_NOT_FOUND)
        applet = next((a for a in self._applets if a.aid.startswith(name)), None)
        if applet is None:
            return reply(SW.FILE_NOT_FOUND)
        if self._selected is not None:
            self._selected.deselect()
            self._selected = None
        answer = applet.select(command)
        if answer.sw != SW.OK:
            return answer
        self._selected = applet
        if command.p2 & 0x0C == _P2_NO_RESPONSE_DATA:
            return reply()
        return answer

    def _reader_command(self, command: CommandApdu) -> ResponseApdu:
        """PC/SC Part 3 GET DATA, which a reader answers from the anticollision and the ATS."""
        if command.ins != INS_GET_DATA:
            return reply(SW.INS_NOT_SUPPORTED)
        if command.p2 or command.p1 not in (0x00, 0x01):
            return reply(SW.WRONG_P1P2)
        if command.le is None or command.data:
            return reply(SW.WRONG_LENGTH)
        value = self.uid if command.p1 == 0x00 else self.historical_bytes
        if command.le in (MAX_SHORT_LE, MAX_EXTENDED_LE) or command.le == len(value):
            return reply(SW.OK, value)
        if command.le < len(value):
            return reply(0x6C00 | len(value))
        return reply(SW.END_OF_DATA, value)
