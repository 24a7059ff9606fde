"""CTAPHID packet framing (nymi_device.protocol.ctaphid)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from nymi_device.errors import InvalidInputError
from nymi_device.protocol.ctaphid import (
    CONT_DATA_SIZE,
    INIT_DATA_SIZE,
    MAX_MESSAGE_SIZE,
    REBOOT_DATAGRAM,
    REPORT_SIZE,
    Command,
    ContinuationPacket,
    HidErrorCode,
    InitPacket,
    InitResponse,
    command_name,
    decode_packet,
    encode_message,
    error_report,
    keepalive_report,
)


def test_sizes_follow_the_spec() -> None:
    assert (REPORT_SIZE, INIT_DATA_SIZE, CONT_DATA_SIZE, MAX_MESSAGE_SIZE) == (64, 57, 59, 7609)
    assert len(REBOOT_DATAGRAM) == REPORT_SIZE


def test_single_packet_layout() -> None:
    (report,) = encode_message(0xCAFEBABE, Command.PING, b"hi")
    assert report == bytes.fromhex("cafebabe81" "0002" "6869").ljust(64, b"\0")
    packet = decode_packet(report)
    assert packet == InitPacket(0xCAFEBABE, Command.PING, 2, report[7:])
    assert isinstance(packet, InitPacket) and packet.payload == b"hi"


def test_multi_packet_layout() -> None:
    payload = bytes(range(256)) * 2
    reports = encode_message(1, Command.CBOR, payload)
    assert len(reports) == 1 + -(-(len(payload) - 57) // 59)
    assert reports[0][:7] == bytes.fromhex("0000000190" "0200")
    for seq, report in enumerate(reports[1:]):
        packet = decode_packet(report)
        assert isinstance(packet, ContinuationPacket) and packet.seq == seq


def test_maximum_message_uses_seq_0_to_127() -> None:
    reports = encode_message(7, Command.PING, bytes(MAX_MESSAGE_SIZE))
    assert len(reports) == 129 and reports[-1][4] == 0x7F
    with pytest.raises(InvalidInputError):
        encode_message(7, Command.PING, bytes(MAX_MESSAGE_SIZE + 1))


@pytest.mark.parametrize("size", [0, 63, 65])
def test_decode_refuses_other_sizes(size: int) -> None:
    with pytest.raises(InvalidInputError):
        decode_packet(bytes(size))


def test_error_and_keepalive_reports() -> None:
    assert error_report(5, HidErrorCode.CHANNEL_BUSY) == bytes.fromhex("00000005bf000106").ljust(
        64, b"\0"
    )
    assert keepalive_report(5, 2) == bytes.fromhex("00000005bb000102").ljust(64, b"\0")
    assert HidErrorCode(0x42) is HidErrorCode.OTHER  # unknown codes do not crash
    assert command_name(0x86) == "INIT" and command_name(0x41) == "VENDOR_0x41"


def test_init_response_round_trip() -> None:
    response = InitResponse(b"12345678", 0x01020304, 2, (1, 2, 3), 0x0D)
    encoded = response.encode()
    assert encoded == b"12345678" + bytes.fromhex("01020304" "02" "010203" "0d")
    assert InitResponse.decode(encoded + b"\0" * 40) == response
    with pytest.raises(InvalidInputError):
        InitResponse.decode(encoded[:16])


@given(
    cid=st.integers(0, 0xFFFFFFFF),
    cmd=st.integers(0, 0x7F),
    payload=st.binary(max_size=MAX_MESSAGE_SIZE),
)
def test_encode_then_reassemble_round_trips(cid: int, cmd: int, payload: bytes) -> None:
    reports = encode_message(cid, cmd, payload)
    first = decode_packet(reports[0])
    assert isinstance(first, InitPacket)
    assert (first.cid, first.cmd, first.bcnt) == (cid, cmd, len(payload))
    data = bytearray(first.data)
    for seq, report in enumerate(reports[1:]):
        packet = decode_packet(report)
        assert isinstance(packet, ContinuationPacket)
        assert (packet.cid, packet.seq) == (cid, seq)
        data += packet.data
    assert bytes(data[: len(payload)]) == payload
    assert not any(data[len(payload) :])  # zero padding


@given(st.binary(min_size=64, max_size=64))
def test_any_report_decodes(report: bytes) -> None:
    packet = decode_packet(report)
    assert packet.cid == int.from_bytes(report[:4], "big")
    assert isinstance(packet, InitPacket) == bool(report[4] & 0x80)
