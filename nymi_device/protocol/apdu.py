"""ISO/IEC 7816-4 APDUs, status words and the PC/SC contactless ATR: pure, bytes in, objects out.

Both sides use this module: the host transports (pyscard, nfcpy) and the band's card OS, so the
two can never disagree on a length field.

**Command APDU cases** (ISO/IEC 7816-4 §5.1, ISO/IEC 7816-3 §12.1.3). ``B1`` is the first byte
after the 4-byte header ``CLA INS P1 P2``:

=========  ====================================  =================================
case       body after the header                 meaning
=========  ====================================  =================================
1          (nothing)                             no data, no response data
2 short    ``Le`` (1 byte, ``00`` = 256)         response data expected
3 short    ``Lc`` (1..255) + data                data, no response data
4 short    ``Lc`` + data + ``Le``                both
2 ext.     ``00`` + ``Le`` (2 bytes, ``0000`` =  response data expected
           65536)
3 ext.     ``00`` + ``Lc`` (2 bytes, 1..65535)   data, no response data
           + data
4 ext.     ``00`` + ``Lc`` (2) + data + ``Le``   both
           (2 bytes, ``0000`` = 65536)
=========  ====================================  =================================

Anything else (an ``Lc`` that disagrees with the number of bytes, an extended ``Lc`` of zero, a
short ``Lc`` followed by a 2-byte ``Le``) is malformed and raises :class:`ApduFormatError`; a card
answers it with ``6700`` (wrong length).

**Command chaining** (§5.3.3): bit ``0x10`` of CLA marks "more commands of this chain follow", in
the interindustry classes and, as CTAP 2.1 §11.3 uses it (CLA ``0x90``), in proprietary ones.

**Status words** are an :class:`SW` ``IntEnum``; a value it does not name becomes a pseudo-member
(``SW(0x6283).name == "SW_6283"``) instead of an error, so a card's unexpected answer never
crashes the host. ``61xx`` (more bytes available) and ``6Cxx`` (wrong Le, exact length in SW2)
are families; see :meth:`SW.family`.

**ATR**: :func:`contactless_atr` builds the ATR a PC/SC reader reports for an ISO/IEC 14443-4
card (PC/SC Part 3 §3.1.3.2.3): ``3B 8n 80 01`` + the historical bytes of the card's ATS + TCK.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import reduce
from operator import xor

from nymi_device.errors import InvalidInputError

__all__ = [
    "AID_FIDO",
    "AID_NYMI_SECURE_NFC",
    "AID_SEOS",
    "CHAINING_BIT",
    "KNOWN_AIDS",
    "MAX_EXTENDED_LC",
    "MAX_SHORT_LC",
    "SW",
    "ApduFormatError",
    "CommandApdu",
    "ResponseApdu",
    "atr_historical_bytes",
    "atr_tck_ok",
    "chain_commands",
    "contactless_atr",
    "storage_card_atr",
    "tlv",
    "tlv_items",
]

#: CLA bit marking "more commands of this chain follow" (ISO/IEC 7816-4 §5.4.1).
CHAINING_BIT = 0x10
MAX_SHORT_LC = 255
MAX_SHORT_LE = 256
MAX_EXTENDED_LC = 65535
MAX_EXTENDED_LE = 65536

#: FIDO applet (CTAP 2.1 §11.3.3).
AID_FIDO = bytes.fromhex("A0000006472F0001")
#: HID SEOS applet (the AID SEOS readers select).
AID_SEOS = bytes.fromhex("A0000004400001010001")
#: The band's Secure NFC identity applet. ``F`` = a proprietary, unregistered AID category
#: (ISO/IEC 7816-5); the bytes spell ``NYMISNFC`` followed by version 01.
AID_NYMI_SECURE_NFC = bytes.fromhex("F04E594D49534E464301")
#: Applets a host probes for, by name.
KNOWN_AIDS: dict[str, bytes] = {
    "fido": AID_FIDO,
    "secure-nfc": AID_NYMI_SECURE_NFC,
    "seos": AID_SEOS,
}


class ApduFormatError(InvalidInputError):
    """The bytes are not a well-formed command or response APDU."""


@enum.unique
class SW(enum.IntEnum):
    """Status words (ISO/IEC 7816-4 §5.6, CTAP 2.1 §11.3), with a fallback for unknown values."""

    OK = 0x9000
    #: CTAP over NFC: still processing, data = one keepalive status byte (CTAP 2.1 §11.3.5).
    STATUS_UPDATE = 0x9100
    #: ``61xx``: SW2 more response bytes are available through GET RESPONSE.
    BYTES_REMAINING = 0x6100
    END_OF_DATA = 0x6282
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    SECURE_MESSAGING_NOT_SUPPORTED = 0x6882
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    FUNCTION_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    INCORRECT_P1P2 = 0x6A86
    REFERENCED_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    #: ``6Cxx``: wrong Le, SW2 is the exact number of bytes available.
    WRONG_LE = 0x6C00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00

    @classmethod
    def _missing_(cls, value: object) -> SW | None:
        if not isinstance(value, int) or not 0 <= value <= 0xFFFF:
            return None
        member = int.__new__(cls, value)
        member._name_ = f"SW_{value:04X}"
        member._value_ = value
        cls._value2member_map_[value] = member
        return member

    @property
    def sw1(self) -> int:
        return int(self) >> 8

    @property
    def sw2(self) -> int:
        return int(self) & 0xFF

    @property
    def family(self) -> SW:
        """``61xx`` → :attr:`BYTES_REMAINING`, ``6Cxx`` → :attr:`WRONG_LE`, others unchanged."""
        if self.sw1 in (0x61, 0x6C):
            return SW(int(self) & 0xFF00)
        return self

    @property
    def known(self) -> bool:
        """Whether this status word (or its family) has a name of its own."""
        return self.family.name in SW.__members__

    @property
    def is_success(self) -> bool:
        """``9000``, or ``61xx`` (success, more data waiting)."""
        return self == SW.OK or self.sw1 == 0x61

    def describe(self) -> str:
        if self.sw1 == 0x61:
            return f"{self.sw2 or 256} more bytes available"
        if self.sw1 == 0x6C:
            return f"wrong Le, {self.sw2 or 256} bytes available"
        if not self.known:
            return f"status {int(self):04X}"
        return self.name.replace("_", " ").lower()


def _ne_short(byte: int) -> int:
    return byte or MAX_SHORT_LE


def _ne_extended(high: int, low: int) -> int:
    return (high << 8 | low) or MAX_EXTENDED_LE


@dataclass(frozen=True)
class CommandApdu:
    """One command APDU.

    :ivar data: the command data field (``Lc`` is its length).
    :ivar le: Ne, the maximum number of response bytes expected (1..65536), or ``None`` when the
        command has no ``Le`` field (cases 1 and 3).
    :ivar extended: whether the length fields are (or are to be) encoded in extended form.
    """

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None
    extended: bool = False

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ApduFormatError(f"{name.upper()} must be a byte, got {value!r}")
        if len(self.data) > MAX_EXTENDED_LC:
            raise ApduFormatError(f"command data of {len(self.data)} bytes exceeds 65535")
        if self.le is not None and not 1 <= self.le <= MAX_EXTENDED_LE:
            raise ApduFormatError(f"Le must be 1..65536, got {self.le}")
        if not self.extended and (len(self.data) > MAX_SHORT_LC
                                  or (self.le or 0) > MAX_SHORT_LE):
            object.__setattr__(self, "extended", True)
        elif self.extended and not self.data and self.le is None:
            object.__setattr__(self, "extended", False)  # case 1 has no length field at all

    # -- decoding ------------------------------------------------------------------------------

    @classmethod
    def parse(cls, raw: bytes | bytearray | memoryview) -> CommandApdu:
        """Decode a command APDU of any of the seven cases.

        :raises ApduFormatError: if the length fields disagree with the number of bytes.
        """
        apdu = bytes(raw)
        n = len(apdu)
        if n < 4:
            raise ApduFormatError(f"a command APDU has at least 4 bytes, got {n}")
        cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
        if n == 4:
            return cls(cla, ins, p1, p2)
        b1 = apdu[4]
        if n == 5:
            return cls(cla, ins, p1, p2, le=_ne_short(b1))
        if b1:
            if n == 5 + b1:
                return cls(cla, ins, p1, p2, apdu[5:])
            if n == 6 + b1:
                return cls(cla, ins, p1, p2, apdu[5:-1], le=_ne_short(apdu[-1]))
            raise ApduFormatError(f"short Lc {b1} does not match the {n - 5} bytes that follow")
        if n == 7:
            return cls(cla, ins, p1, p2, le=_ne_extended(apdu[5], apdu[6]), extended=True)
        if n < 7:
            raise ApduFormatError(f"truncated extended length field ({n} bytes)")
        lc = apdu[5] << 8 | apdu[6]
        if lc == 0:
            raise ApduFormatError("extended Lc of zero")
        if n == 7 + lc:
            return cls(cla, ins, p1, p2, apdu[7:], extended=True)
        if n == 9 + lc:
            return cls(cla, ins, p1, p2, apdu[7:-2], le=_ne_extended(apdu[-2], apdu[-1]),
                       extended=True)
        raise ApduFormatError(f"extended Lc {lc} does not match the {n - 7} bytes that follow")

    # -- encoding ------------------------------------------------------------------------------

    def encode(self) -> bytes:
        """The APDU bytes, in short form unless :attr:`extended` (forced by the sizes or asked)."""
        header = bytes((self.cla, self.ins, self.p1, self.p2))
        data, le = self.data, self.le
        if not self.extended:
            body = bytes((len(data),)) + data if data else b""
            if le is not None:
                body += bytes((le & 0xFF,))
            return header + body
        body = b"\x00" + len(data).to_bytes(2, "big") + data if data else b""
        if le is not None:
            le_field = (le & 0xFFFF).to_bytes(2, "big")
            body += le_field if data else b"\x00" + le_field
        return header + body

    def __bytes__(self) -> bytes:
        return self.encode()

    # -- properties ----------------------------------------------------------------------------

    @property
    def case(self) -> int:
        """ISO/IEC 7816-3 case: 1 (nothing), 2 (Le), 3 (data), 4 (data and Le)."""
        return 1 + (self.le is not None) + 2 * bool(self.data)

    @property
    def proprietary(self) -> bool:
        """CLA with bit 8 set: a proprietary class (CTAP's ``0x80``)."""
        return bool(self.cla & 0x80)

    @property
    def chained(self) -> bool:
        """More commands of this chain follow (CLA bit ``0x10``)."""
        return bool(self.cla & CHAINING_BIT) and self.cla != 0xFF

    @property
    def channel(self) -> int:
        """Logical channel number (first interindustry class: b2b1; further: b4b3b2b1 + 4)."""
        if self.cla & 0x40 and not self.cla & 0x80:
            return 4 + (self.cla & 0x0F)
        return self.cla & 0x03

    @property
    def secure_messaging(self) -> bool:
        """Secure messaging indicated in an interindustry CLA."""
        if self.cla & 0x80:
            return False
        if self.cla & 0x40:
            return bool(self.cla & 0x20)
        return bool(self.cla & 0x0C)

    @property
    def header(self) -> tuple[int, int, int, int]:
        return self.cla, self.ins, self.p1, self.p2

    def with_chaining(self, more: bool) -> CommandApdu:
        """This command with the chaining bit set (``more``) or cleared."""
        cla = self.cla | CHAINING_BIT if more else self.cla & ~CHAINING_BIT
        return CommandApdu(cla, self.ins, self.p1, self.p2, self.data, self.le, self.extended)


def chain_commands(command: CommandApdu, size: int = MAX_SHORT_LC) -> list[CommandApdu]:
    """Split ``command`` into a chain of short APDUs carrying at most ``size`` data bytes each.

    Every part but the last has the chaining bit set and no ``Le``; the last keeps the ``Le``.
    """
    if not 1 <= size <= MAX_SHORT_LC:
        raise ApduFormatError(f"chain part size must be 1..255, got {size}")
    data = command.data
    if len(data) <= size:
        return [CommandApdu(command.cla, command.ins, command.p1, command.p2, data,
                            command.le if (command.le or 0) <= MAX_SHORT_LE else MAX_SHORT_LE)]
    parts: list[CommandApdu] = []
    cla = command.cla & ~CHAINING_BIT
    for offset in range(0, len(data), size):
        chunk = data[offset:offset + size]
        last = offset + size >= len(data)
        le = min(command.le, MAX_SHORT_LE) if last and command.le is not None else None
        parts.append(CommandApdu(cla | (0 if last else CHAINING_BIT), command.ins, command.p1,
                                 command.p2, chunk, le))
    return parts


@dataclass(frozen=True)
class ResponseApdu:
    """One response APDU: data field and status word."""

    data: bytes
    sw: int

    def __post_init__(self) -> None:
        if not 0 <= self.sw <= 0xFFFF:
            raise ApduFormatError(f"status word must be 0..FFFF, got {self.sw!r}")

    @classmethod
    def parse(cls, raw: bytes | bytearray | memoryview) -> ResponseApdu:
        """Decode ``data + SW1 SW2``.

        :raises ApduFormatError: if there are fewer than 2 bytes.
        """
        body = bytes(raw)
        if len(body) < 2:
            raise ApduFormatError(f"a response APDU has at least 2 bytes, got {len(body)}")
        return cls(body[:-2], body[-2] << 8 | body[-1])

    def encode(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    def __bytes__(self) -> bytes:
        return self.encode()

    @property
    def status(self) -> SW:
        return SW(self.sw)

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    @property
    def ok(self) -> bool:
        return self.sw == SW.OK


# -- BER-TLV (ISO/IEC 7816-4 §5.2), as found in FCI templates ---------------------------------

def tlv(tag: int, value: bytes) -> bytes:
    """One BER-TLV data object (1- or 2-byte tag, length in short or ``81``/``82`` form)."""
    if not 0 <= tag <= 0xFFFF:
        raise ApduFormatError(f"tag {tag!r} is not 1 or 2 bytes")
    tag_bytes = tag.to_bytes(2, "big") if tag > 0xFF else bytes((tag,))
    n = len(value)
    if n < 0x80:
        length = bytes((n,))
    elif n <= 0xFF:
        length = bytes((0x81, n))
    elif n <= 0xFFFF:
        length = b"\x82" + n.to_bytes(2, "big")
    else:
        raise ApduFormatError(f"value of {n} bytes is too long for a TLV")
    return tag_bytes + length + value


def tlv_items(data: bytes) -> list[tuple[int, bytes]]:
    """The data objects at one level of a BER-TLV string, in order.

    :raises ApduFormatError: on a truncated tag, length or value.
    """
    items: list[tuple[int, bytes]] = []
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        i += 1
        if tag & 0x1F == 0x1F:  # multi-byte tag (two bytes is all ISO/IEC 7816-4 uses here)
            if i >= n:
                raise ApduFormatError("TLV truncated in a tag")
            tag = tag << 8 | data[i]
            i += 1
        if i >= n:
            raise ApduFormatError("TLV truncated in a length")
        length = data[i]
        i += 1
        if length & 0x80:
            size = length & 0x7F
            if size not in (1, 2) or i + size > n:
                raise ApduFormatError("TLV length field is malformed")
            length = int.from_bytes(data[i:i + size], "big")
            i += size
        if i + length > n:
            raise ApduFormatError("TLV truncated in a value")
        items.append((tag, data[i:i + length]))
        i += length
    return items


# -- ATR (ISO/IEC 7816-3 §8, PC/SC Part 3 §3.1.3.2.3) ------------------------------------------

def _tck(body: bytes) -> int:
    return reduce(xor, body, 0)


def contactless_atr(historical: bytes) -> bytes:
    """The ATR a PC/SC reader builds for an ISO/IEC 14443-4 card from its ATS historical bytes.

    ``3B`` (direct convention), ``T0 = 8n`` (TD1 present, n historical bytes), ``TD1 = 80``
    (TD2 present, T=0), ``TD2 = 01`` (T=1), the historical bytes, and TCK = XOR of T0..last.
    """
    if len(historical) > 15:
        raise ApduFormatError(f"at most 15 historical bytes, got {len(historical)}")
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    return b"\x3b" + body + bytes((_tck(body),))


def storage_card_atr(standard: int, card_name: int) -> bytes:
    """The PC/SC Part 3 ATR of a contactless storage card (no ISO/IEC 14443-4).

    Historical bytes ``80 4F 0C`` + RID ``A0 00 00 03 06`` + standard (SS) + card name (NN NN)
    + ``00 00 00 00``.
    """
    historical = (b"\x80\x4f\x0c\xa0\x00\x00\x03\x06" + bytes((standard & 0xFF,))
                  + (card_name & 0xFFFF).to_bytes(2, "big") + b"\x00\x00\x00\x00")
    return contactless_atr(historical)


def _interface_bytes(atr: bytes) -> tuple[int, bool]:
    """(index of the first historical byte, whether a protocol other than T=0 is indicated)."""
    if len(atr) < 2 or atr[0] not in (0x3B, 0x3F):
        raise ApduFormatError("an ATR starts with TS = 3B or 3F")
    position = 1  # T0, then each TDi in turn
    indicator = atr[1] >> 4
    tck_needed = False
    while True:
        position += bin(indicator & 0x7).count("1")  # TAi, TBi, TCi
        if not indicator & 0x8:
            break
        position += 1
        if position >= len(atr):
            raise ApduFormatError("ATR truncated in its interface bytes")
        td = atr[position]
        if td & 0x0F:
            tck_needed = True
        indicator = td >> 4
    return position + 1, tck_needed


def atr_historical_bytes(atr: bytes) -> bytes:
    """The historical bytes of an ATR.

    :raises ApduFormatError: if the ATR is truncated.
    """
    start, _ = _interface_bytes(atr)
    count = atr[1] & 0x0F
    if start + count > len(atr):
        raise ApduFormatError("ATR truncated in its historical bytes")
    return atr[start:start + count]


def atr_tck_ok(atr: bytes) -> bool:
    """Whether the ATR's check byte is right (or absent when only T=0 is indicated)."""
    try:
        start, tck_needed = _interface_bytes(atr)
    except ApduFormatError:
        return False
    end = start + (atr[1] & 0x0F)
    if not tck_needed:
        return len(atr) == end
    return len(atr) == end + 1 and _tck(atr[1:]) == 0
