"""The band's ISO-DEP layer, card side: activation, block numbering, chaining both ways."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from simulator.band.nfc.iso_dep import IsoDepCard


@dataclass
class EchoCard:
    """Answers every APDU with its own bytes + 9000."""

    historical_bytes: bytes = b"\x80\x73\xc0\x21\xc0"
    powered: int = 0
    seen: list[bytes] = field(default_factory=list)

    def transmit(self, apdu: bytes) -> bytes:
        self.seen.append(apdu)
        return apdu + b"\x90\x00"

    def power_on(self) -> None:
        self.powered += 1


@pytest.fixture
def picc() -> IsoDepCard:
    return IsoDepCard(EchoCard())


def test_rats_answers_the_ats(picc: IsoDepCard) -> None:
    assert picc.handle(b"\x02\x00") is None  # not activated: silent
    ats = picc.handle(b"\xe0\x80")
    assert ats == bytes.fromhex("0A78 80 A0 00 8073C021C0".replace(" ", ""))
    assert ats[0] == len(ats) and ats[1] & 0x0F == 8  # FSCI 8: frames of 256 bytes
    assert picc.active and isinstance(picc.card, EchoCard) and picc.card.powered == 1


def test_i_blocks_alternate_block_numbers(picc: IsoDepCard) -> None:
    picc.handle(b"\xe0\x80")
    assert picc.handle(b"\x02" + b"\x00\xa4") == b"\x02\x00\xa4\x90\x00"
    assert picc.handle(b"\x03" + b"\x00\xb0") == b"\x03\x00\xb0\x90\x00"
    # A lost answer: R(NAK) with the card's number repeats it; the other number gets R(ACK).
    assert picc.handle(b"\xb3") == b"\x03\x00\xb0\x90\x00"
    assert picc.handle(b"\xb2") == b"\xa3"


def test_reader_chaining_is_acknowledged_and_assembled(picc: IsoDepCard) -> None:
    picc.handle(b"\xe0\x80")
    assert picc.handle(b"\x12" + b"\x01\x02") == b"\xa2"
    assert picc.handle(b"\x13" + b"\x03") == b"\xa3"
    assert picc.handle(b"\x02" + b"\x04") == b"\x02\x01\x02\x03\x04\x90\x00"
    assert isinstance(picc.card, EchoCard) and picc.card.seen == [b"\x01\x02\x03\x04"]


def test_long_answers_are_chained_by_the_card() -> None:
    picc = IsoDepCard(EchoCard())
    picc.handle(b"\xe0\x50")  # FSDI 5: the reader takes frames of 64 bytes
    command = bytes(range(100))
    first = picc.handle(b"\x02" + command)
    assert first is not None and first[0] == 0x12 and len(first) == 62
    second = picc.handle(b"\xa3")  # R(ACK) for the next part
    assert second is not None and second[0] == 0x03
    assert first[1:] + second[1:] == command + b"\x90\x00"


def test_deselect_and_unknown_frames(picc: IsoDepCard) -> None:
    picc.handle(b"\xe0\x80")
    assert picc.handle(b"\x0a\x01\x00\xa4") is None  # CID that was not announced
    assert picc.handle(b"\xf2\x01") is None            # a WTX answer that was never asked
    assert picc.handle(b"") is None
    assert picc.handle(b"\xc2") == b"\xc2"
    assert not picc.active and picc.handle(b"\x02\x00") is None


def test_fwi_is_checked() -> None:
    with pytest.raises(ValueError):
        IsoDepCard(EchoCard(), fwi=15)
