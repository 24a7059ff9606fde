"""FIDO over BLE framing (nymi_device.protocol.fido_ble, CTAP 2.1 §11.4)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nymi_device.protocol.fido_ble import (
    FIDO_CONTROL_POINT,
    FIDO_CONTROL_POINT_LENGTH,
    FIDO_SERVICE,
    FIDO_SERVICE_REVISION_BITFIELD,
    FIDO_STATUS,
    RESPONSE_COMMANDS,
    BandBeacon,
    BandFlags,
    BleErrorCode,
    Command,
    Failure,
    Message,
    Reassembler,
    decode_manufacturer_data,
    encode_manufacturer_data,
    error_frame,
    fragment,
    keepalive_frame,
)


def test_uuids_are_the_specs() -> None:
    assert FIDO_SERVICE == "0000fffd-0000-1000-8000-00805f9b34fb"
    assert FIDO_CONTROL_POINT == "f1d0fff1-deaa-ecee-b42f-c9ba7ed623bb"
    assert FIDO_STATUS == "f1d0fff2-deaa-ecee-b42f-c9ba7ed623bb"
    assert FIDO_CONTROL_POINT_LENGTH == "f1d0fff3-deaa-ecee-b42f-c9ba7ed623bb"
    assert FIDO_SERVICE_REVISION_BITFIELD == "f1d0fff4-deaa-ecee-b42f-c9ba7ed623bb"


def test_single_fragment_layout() -> None:
    assert fragment(Command.MSG, b"\x04", 20) == [bytes.fromhex("83000104")]
    assert fragment(Command.CANCEL, b"", 20) == [bytes.fromhex("be0000")]
    assert keepalive_frame(2) == bytes.fromhex("82000102")
    assert error_frame(BleErrorCode.INVALID_SEQ) == bytes.fromhex("bf000104")


def test_multi_fragment_layout_and_seq_wrap() -> None:
    data = bytes(range(256)) * 20  # 5120 bytes in 20-byte fragments: more than 128 of them
    frames = fragment(Command.MSG, data, 20)
    assert frames[0][:3] == bytes([0x83, 0x14, 0x00]) and len(frames[0]) == 20
    assert all(len(f) <= 20 for f in frames)
    seqs = [f[0] for f in frames[1:]]
    assert seqs[:3] == [0, 1, 2] and seqs[127:130] == [0x7F, 0, 1]
    reassembler = Reassembler()
    results = [reassembler.feed(f) for f in frames]
    assert results[:-1] == [None] * (len(frames) - 1)
    assert results[-1] == Message(Command.MSG, data)


@pytest.mark.parametrize(("frames", "code"), [
    ([b""], BleErrorCode.INVALID_LEN),
    ([b"\x83\x00"], BleErrorCode.INVALID_LEN),
    ([b"\x00abc"], BleErrorCode.INVALID_SEQ),                       # continuation, no message
    ([b"\x83\x00\x05ab", b"\x01cd"], BleErrorCode.INVALID_SEQ),     # bad sequence
    ([b"\x83\x00\x05ab", b"\x83\x00\x01x"], BleErrorCode.INVALID_SEQ),  # init mid-message
    ([b"\x83\x00\x02abc"], BleErrorCode.INVALID_LEN),               # overlong init
    ([b"\x83\x00\x03ab", b"\x00cd"], BleErrorCode.INVALID_LEN),     # overlong continuation
    ([b"\x84\x00\x00"], BleErrorCode.INVALID_CMD),                  # unknown command
    ([b"\x82\x00\x01\x01"], BleErrorCode.INVALID_CMD),              # KEEPALIVE from a client
    ([b"\x83\x20\x00"], BleErrorCode.INVALID_LEN),                  # beyond max_message
])
def test_every_error_case(frames: list[bytes], code: BleErrorCode) -> None:
    reassembler = Reassembler(max_message=1024)
    results = [reassembler.feed(f) for f in frames]
    assert isinstance(results[-1], Failure) and results[-1].code == code
    assert not reassembler.busy
    # After a failure the next message is received normally.
    assert reassembler.feed(b"\x81\x00\x02hi") == Message(Command.PING, b"hi")


def test_fragment_longer_than_control_point_length_is_refused() -> None:
    reassembler = Reassembler(max_fragment=20)
    result = reassembler.feed(b"\x83\x00\x15" + bytes(18))
    assert isinstance(result, Failure) and result.code == BleErrorCode.INVALID_LEN


def test_fragment_rejects_bad_arguments() -> None:
    with pytest.raises(ValueError):
        fragment(0x03, b"", 20)
    with pytest.raises(ValueError):
        fragment(Command.MSG, bytes(70000), 512)
    with pytest.raises(ValueError):
        fragment(Command.MSG, b"x", 3)


@given(st.binary(max_size=3000), st.integers(min_value=4, max_value=512),
       st.sampled_from([Command.MSG, Command.PING]))
def test_fragment_then_reassemble_round_trips(data: bytes, size: int, cmd: Command) -> None:
    reassembler = Reassembler(max_fragment=size)
    frames = fragment(cmd, data, size)
    *head, last = [reassembler.feed(f) for f in frames]
    assert head == [None] * len(head)
    assert last == Message(cmd, data)


@settings(max_examples=400)
@given(st.lists(st.binary(max_size=40), max_size=40), st.booleans())
def test_arbitrary_fragments_give_a_message_or_a_spec_error(
    frames: list[bytes], responses: bool
) -> None:
    accept = RESPONSE_COMMANDS if responses else frozenset({Command.PING, Command.MSG,
                                                            Command.CANCEL})
    reassembler = Reassembler(accept, max_message=300, max_fragment=32)
    for frame in frames:
        result = reassembler.feed(frame)  # never raises
        assert result is None or isinstance(result, Message | Failure)
        if isinstance(result, Failure):
            assert result.code in BleErrorCode and not reassembler.busy
        if isinstance(result, Message):
            assert result.cmd in accept and len(result.data) <= 300


@given(st.lists(st.binary(min_size=1, max_size=30), max_size=30))
def test_arbitrary_continuations_after_a_valid_init(frames: list[bytes]) -> None:
    reassembler = Reassembler()
    assert reassembler.feed(b"\x83\x01\x00" + bytes(10)) is None
    for frame in frames:
        result = reassembler.feed(frame)
        assert result is None or isinstance(result, Message | Failure)


def test_manufacturer_data_round_trip() -> None:
    flags = BandFlags.ENROLLED | BandFlags.ON_WRIST | BandFlags.FIDO_BLE
    raw = encode_manufacturer_data("AAAH-00125", flags)
    assert raw == bytes([1, 0x25]) + b"AAAH-00125"
    assert decode_manufacturer_data(raw) == BandBeacon("AAAH-00125", flags)
    assert decode_manufacturer_data(b"\x02\x00AAAH") is None
    assert decode_manufacturer_data(b"\x01\xffX") == BandBeacon("X", BandFlags(0x3F))
    assert decode_manufacturer_data(b"\x01\x00\xff\xfe") is None
