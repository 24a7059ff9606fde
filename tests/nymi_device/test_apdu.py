"""The ISO 7816-4 codec: the seven APDU cases, chaining, status words, TLV, the ATR."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nymi_device.errors import InvalidInputError
from nymi_device.protocol.apdu import (
    SW,
    ApduFormatError,
    CommandApdu,
    ResponseApdu,
    atr_historical_bytes,
    atr_tck_ok,
    chain_commands,
    contactless_atr,
    storage_card_atr,
    tlv,
    tlv_items,
)

BYTE = st.integers(0, 255)


@st.composite
def commands(draw: st.DrawFn) -> CommandApdu:
    extended = draw(st.booleans())
    data = draw(st.binary(max_size=700 if extended else 255))
    le = draw(st.none() | st.integers(1, 65536 if extended else 256))
    return CommandApdu(draw(BYTE), draw(BYTE), draw(BYTE), draw(BYTE), data, le, extended)


@given(commands())
def test_command_round_trip(command: CommandApdu) -> None:
    encoded = command.encode()
    parsed = CommandApdu.parse(encoded)
    assert parsed == command
    assert parsed.encode() == encoded


@given(st.binary(max_size=600))
def test_parse_never_fails_otherwise(raw: bytes) -> None:
    try:
        command = CommandApdu.parse(raw)
    except ApduFormatError:
        return
    assert command.encode() == raw


@pytest.mark.parametrize(("hex_apdu", "case", "data", "le", "extended"), [
    ("00A40400", 1, b"", None, False),
    ("00C0000010", 2, b"", 16, False),
    ("00C0000000", 2, b"", 256, False),
    ("00A4040002A0B0", 3, b"\xa0\xb0", None, False),
    ("00A4040002A0B000", 4, b"\xa0\xb0", 256, False),
    ("80100000000000", 2, b"", 65536, True),
    ("8010000000012C", 2, b"", 300, True),
    ("80100000000002A0B0", 3, b"\xa0\xb0", None, True),
    ("80100000000002A0B00000", 4, b"\xa0\xb0", 65536, True),
])
def test_the_seven_cases(hex_apdu: str, case: int, data: bytes, le: int | None,
                         extended: bool) -> None:
    command = CommandApdu.parse(bytes.fromhex(hex_apdu))
    assert (command.case, command.data, command.le, command.extended) == (case, data, le, extended)
    assert command.encode().hex().upper() == hex_apdu


@pytest.mark.parametrize("hex_apdu", [
    "", "00", "00A404",
    "00A4040003A0",          # short Lc 3, one byte
    "00A4040001A0B0C0",      # short Lc 1, two bytes after
    "00A404000000",          # extended Lc 0
    "00A40400000003A0",      # extended Lc 3, one byte
    "00A4040000",            # wait: this one is case 2 short with Le 256 (valid)
])
def test_malformed_commands(hex_apdu: str) -> None:
    raw = bytes.fromhex(hex_apdu)
    if hex_apdu == "00A4040000":
        assert CommandApdu.parse(raw).le == 256
        return
    with pytest.raises(ApduFormatError):
        CommandApdu.parse(raw)
    assert issubclass(ApduFormatError, InvalidInputError)


def test_sizes_force_extended_form_and_bad_fields_are_refused() -> None:
    assert CommandApdu(0, 0, 0, 0, b"x" * 256).extended
    assert CommandApdu(0, 0, 0, 0, le=257).extended
    assert not CommandApdu(0, 0, 0, 0, b"x" * 255, le=256).extended
    for bad in (dict(cla=256), dict(le=0), dict(le=65537), dict(data=b"x" * 65536)):
        fields = dict(cla=0, ins=0, p1=0, p2=0) | bad
        with pytest.raises(ApduFormatError):
            CommandApdu(**fields)  # type: ignore[arg-type]


def test_class_byte_properties() -> None:
    assert CommandApdu(0x90, 0x10, 0, 0).chained and CommandApdu(0x10, 0xA4, 0, 0).chained
    assert not CommandApdu(0xFF, 0xCA, 0, 0).chained
    assert CommandApdu(0x80, 0x10, 0, 0).proprietary
    assert CommandApdu(0x03, 0xA4, 0, 0).channel == 3
    assert CommandApdu(0x41, 0xA4, 0, 0).channel == 5
    assert CommandApdu(0x0C, 0xA4, 0, 0).secure_messaging
    assert CommandApdu(0x60, 0xA4, 0, 0).secure_messaging
    assert not CommandApdu(0x8C, 0xA4, 0, 0).secure_messaging
    assert CommandApdu(0x80, 0x10, 0, 0).with_chaining(True).cla == 0x90
    assert CommandApdu(0x90, 0x10, 0, 0).with_chaining(False).cla == 0x80


@given(st.binary(min_size=0, max_size=1200), st.integers(1, 255), st.none() | st.integers(1, 256))
def test_chain_commands_split_and_rejoin(data: bytes, size: int, le: int | None) -> None:
    command = CommandApdu(0x80, 0x10, 0x80, 0x00, data, le)
    parts = chain_commands(command, size)
    assert b"".join(p.data for p in parts) == data
    assert all(p.chained and p.le is None for p in parts[:-1])
    assert not parts[-1].chained and parts[-1].le == le
    assert all(len(p.data) <= size and not p.extended for p in parts)


@given(st.binary(max_size=300), st.integers(0, 0xFFFF))
def test_response_round_trip(data: bytes, sw: int) -> None:
    response = ResponseApdu(data, sw)
    assert ResponseApdu.parse(response.encode()) == response
    assert response.sw1 << 8 | response.sw2 == sw


def test_response_needs_a_status_word() -> None:
    with pytest.raises(ApduFormatError):
        ResponseApdu.parse(b"\x90")


@given(st.integers(0, 0xFFFF))
def test_every_status_word_has_a_member(value: int) -> None:
    status = SW(value)
    assert int(status) == value and isinstance(status, SW)
    assert status.describe()


def test_status_word_families() -> None:
    assert SW(0x6110).family is SW.BYTES_REMAINING and SW(0x6110).describe() == (
        "16 more bytes available")
    assert SW(0x6C07).family is SW.WRONG_LE
    assert SW(0x6283).name == "SW_6283" and not SW(0x6283).known
    assert SW.OK.is_success and SW(0x6100).is_success and not SW.WRONG_LENGTH.is_success
    assert SW.FILE_NOT_FOUND.describe() == "file not found"
    with pytest.raises(ValueError):
        SW(0x10000)


@given(st.integers(0, 0xFFFF), st.binary(max_size=400))
def test_tlv_round_trip(tag: int, value: bytes) -> None:
    if tag > 0xFF and tag >> 8 & 0x1F != 0x1F:
        tag = 0x5F00 | (tag & 0xFF)  # two-byte tags start with a byte whose low 5 bits are set
    if tag <= 0xFF and tag & 0x1F == 0x1F:
        tag = 0x50
    assert tlv_items(tlv(tag, value) + tlv(0x84, b"\x01")) == [(tag, value), (0x84, b"\x01")]


@pytest.mark.parametrize("raw", ["6F", "6F05A0", "6F8201", "6F830000010000"])
def test_malformed_tlv(raw: str) -> None:
    with pytest.raises(ApduFormatError):
        tlv_items(bytes.fromhex(raw))


def test_contactless_atr() -> None:
    # A MIFARE Classic 1K as PC/SC Part 3 writes it, with its well-known TCK 6A.
    mifare = storage_card_atr(0x03, 0x0001)
    assert mifare.hex().upper() == "3B8F8001804F0CA000000306030001000000006A"
    assert atr_tck_ok(mifare)
    # An ISO 14443-4 card: the historical bytes of its ATS.
    atr = contactless_atr(bytes.fromhex("8073C021C0"))
    assert atr[:4] == bytes.fromhex("3B858001") and atr_tck_ok(atr)
    assert atr_historical_bytes(atr) == bytes.fromhex("8073C021C0")
    assert not atr_tck_ok(atr[:-1] + bytes((atr[-1] ^ 1,)))
    assert contactless_atr(b"") == bytes.fromhex("3B80800101") and atr_tck_ok(
        contactless_atr(b""))
    with pytest.raises(ApduFormatError):
        contactless_atr(bytes(16))


@given(st.binary(max_size=15))
def test_contactless_atr_always_checks(historical: bytes) -> None:
    atr = contactless_atr(historical)
    assert atr_tck_ok(atr) and atr_historical_bytes(atr) == historical


def test_t0_only_atr_has_no_tck() -> None:
    assert atr_tck_ok(bytes.fromhex("3B00"))
    assert not atr_tck_ok(bytes.fromhex("3B0000"))
    assert not atr_tck_ok(b"\x00")
