"""The band's ISO/IEC 14443-4 (ISO-DEP) layer, card side: blocks in, blocks out, no I/O.

A reader that speaks to the band at the NFC-A frame level (nfcpy's drivers, its UDP simulation
link) activates it with RATS and then exchanges blocks; :class:`IsoDepCard` answers them and
hands whole command APDUs to the card OS. Frames carry no CRC (the link layer adds and checks it).

* **RATS** ``E0 xy`` → **ATS** ``TL T0 TA TB TC`` + historical bytes: FSCI 8 (frames up to 256
  bytes), bit rate 106 kbit/s both ways, FWI as configured (default 10, about 309 ms), no CID and
  no NAD. The historical bytes are the card OS's, so a PC/SC reader's ATR matches.
* **I-blocks** (PCB ``02``/``03``, chaining ``12``/``13``): chained parts are acknowledged with
  R(ACK); a long answer is sent in chained I-blocks, each fetched by the reader's R(ACK).
* **R(NAK)** with the card's block number (a presence check, or a lost answer): the last block
  again; with the other number: R(ACK). **R(ACK)** with the card's number: the last block again.
* **S(DESELECT)** ``C2``: answered ``C2``; the card then waits for RATS again.

Block numbering follows ISO/IEC 14443-4 §7.5.4 rules C-E and 11-13. Waiting time extensions are
not sent: the card OS answers within its inline budget (the FIDO applet answers ``9100`` while it
waits for the wearer), which the default FWT covers. Frames the card does not understand, or CID
and NAD it did not announce, get no answer, as the standard prescribes.
"""

from __future__ import annotations

from typing import Protocol

__all__ = ["IsoDepCard", "TransmitCard"]

_FSC_TABLE = (16, 24, 32, 40, 48, 64, 96, 128, 256)
_RATS = 0xE0
_S_DESELECT = 0xC2
_R_ACK = 0xA2
_R_NAK = 0xB2
_I_BLOCK = 0x02
_CHAINING = 0x10
_MAX_COMMAND = 65535 + 9


class TransmitCard(Protocol):
    """The card OS as the ISO-DEP layer sees it."""

    historical_bytes: bytes

    def transmit(self, apdu: bytes) -> bytes: ...

    def power_on(self) -> None: ...


class IsoDepCard:
    """One card's ISO-DEP state: activation, block numbers, chaining both ways.

    :param card: the card OS (answers whole APDUs).
    :param fwi: frame waiting time integer announced in the ATS (FWT = 302 µs x 2^FWI).
    """

    FSCI = 8

    def __init__(self, card: TransmitCard, *, fwi: int = 10) -> None:
        if not 0 <= fwi <= 14:
            raise ValueError(f"FWI must be 0..14, got {fwi}")
        self.card = card
        self.fwi = fwi
        self.active = False
        self._block = 1
        self._fsd = 256
        self._command = bytearray()
        self._pending: list[bytes] = []
        self._last = b""

    @property
    def ats(self) -> bytes:
        body = bytes((0x70 | self.FSCI, 0x80, self.fwi << 4, 0x00)) + self.card.historical_bytes
        return bytes((len(body) + 1,)) + body

    def handle(self, frame: bytes) -> bytes | None:
        """Answer one frame from the reader; ``None`` means stay silent."""
        if not frame:
            return None
        pcb = frame[0]
        if not self.active:
            if pcb == _RATS and len(frame) == 2:
                return self._activate(frame[1] >> 4)
            return None
        if pcb & 0xE2 == 0x02 and not pcb & 0x0C:  # I-block without CID and NAD
            return self._i_block(pcb, frame[1:])
        if pcb & 0xE6 == 0xA2 and not pcb & 0x08:  # R-block without CID
            return self._r_block(pcb)
        if pcb == _S_DESELECT:
            self.active = False
            self._command.clear()
            self._pending.clear()
            return bytes((_S_DESELECT,))
        return None

    def _activate(self, fsdi: int) -> bytes:
        self.active = True
        self._block = 1
        self._fsd = _FSC_TABLE[min(fsdi, 8)]
        self._command.clear()
        self._pending.clear()
        self.card.power_on()
        self._last = self.ats
        return self._last

    def _send(self, block: bytes) -> bytes:
        self._last = block
        return block

    def _i_block(self, pcb: int, data: bytes) -> bytes | None:
        self._block ^= 1  # rule D
        self._pending.clear()
        self._command.extend(data)
        if len(self._command) > _MAX_COMMAND:
            self._command.clear()
            return None
        if pcb & _CHAINING:
            return self._send(bytes((_R_ACK | self._block,)))
        command, self._command = bytes(self._command), bytearray()
        answer = self.card.transmit(command)
        size = self._fsd - 3  # PCB and the two CRC bytes
        self._pending = [answer[i:i + size] for i in range(0, len(answer), size)] or [b""]
        return self._next_chunk()

    def _next_chunk(self) -> bytes:
        chunk = self._pending.pop(0)
        more = _CHAINING if self._pending else 0
        return self._send(bytes((_I_BLOCK | more | self._block,)) + chunk)

    def _r_block(self, pcb: int) -> bytes | None:
        number = pcb & 0x01
        if number == self._block:  # rule 11
            return self._last or None
        if pcb & 0x10:  # R(NAK) with the other number: rule 12
            return bytes((_R_ACK | self._block,))
        self._block ^= 1  # rule E
        if self._pending:  # rule 13
            return self._next_chunk()
        return self._send(bytes((_R_ACK | self._block,)))
