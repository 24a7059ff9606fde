"""The pure CTAPHID channel state machine: deterministic cases and property tests."""

from __future__ import annotations

import struct

from hypothesis import given, settings
from hypothesis import strategies as st

from nymi_device.protocol.ctaphid import (
    BROADCAST_CID,
    MAX_MESSAGE_SIZE,
    REPORT_SIZE,
    Capability,
    Command,
    HidErrorCode,
    InitPacket,
    InitResponse,
    decode_packet,
    encode_message,
)
from simulator.frontends.ctaphid import (
    Action,
    Cancel,
    CtapHidChannels,
    Dispatch,
    Reply,
)

from .ctaphid_helpers import cont_report, init_report

CID = 0x11223344
CAPS = Capability.CBOR | Capability.WINK


def error(cid: int, code: HidErrorCode) -> Reply:
    return Reply(cid, Command.ERROR, bytes([code]))


def test_single_packet_cbor_is_dispatched_and_completed() -> None:
    channels = CtapHidChannels(capabilities=CAPS)
    (action,) = channels.receive(init_report(CID, Command.CBOR, 1, b"\x04"), 0.0)
    assert isinstance(action, Dispatch)
    assert (action.cid, action.cmd, action.payload) == (CID, Command.CBOR, b"\x04")
    assert channels.busy_cid == CID
    assert channels.complete(action.token) is True
    assert channels.busy_cid is None
    assert channels.complete(action.token) is False


def test_multi_packet_message_and_timeout_clock() -> None:
    channels = CtapHidChannels(msg_timeout=0.5)
    payload = bytes(range(200))
    reports = encode_message(CID, Command.PING, payload)
    assert channels.receive(reports[0], 0.0) == []
    assert channels.next_deadline() == 0.5
    assert channels.receive(reports[1], 0.4) == []
    assert channels.next_deadline() == 0.9  # every packet restarts the clock
    assert channels.expire(0.89) == []
    assert channels.receive(reports[2], 0.89) == []
    assert channels.receive(reports[3], 1.4) == [error(CID, HidErrorCode.MSG_TIMEOUT)]
    # The last packet came too late: the message was dropped and the packet is spurious.
    assert channels.busy_cid is None
    actions = [action for report in reports for action in channels.receive(report, 2.0)]
    assert actions == [Reply(CID, Command.PING, payload)]


def test_expire_sends_timeout_on_the_stalled_channel() -> None:
    channels = CtapHidChannels(msg_timeout=0.25)
    channels.receive(init_report(CID, Command.CBOR, 100, b"\x01" * 57), 10.0)
    assert channels.expire(10.2) == []
    assert channels.expire(10.25) == [error(CID, HidErrorCode.MSG_TIMEOUT)]
    assert channels.next_deadline() is None and channels.busy_cid is None


def test_cancel_and_resync_of_a_running_request() -> None:
    channels = CtapHidChannels()
    (dispatch,) = channels.receive(init_report(CID, Command.CBOR, 1, b"\x01"), 0.0)
    assert isinstance(dispatch, Dispatch)
    assert channels.receive(init_report(CID, Command.CANCEL, 0), 0.1) == [
        Cancel(dispatch.token, discard=False)
    ]
    assert channels.receive(init_report(0x55, Command.CANCEL, 0), 0.1) == []
    actions = channels.receive(init_report(CID, Command.INIT, 8, b"n" * 8), 0.2)
    assert actions[0] == Cancel(dispatch.token, discard=True)
    assert isinstance(actions[1], Reply) and actions[1].cmd == Command.INIT
    assert InitResponse.decode(actions[1].payload).cid == CID
    assert channels.complete(dispatch.token) is False  # its answer is dropped


def test_power_cycle_forgets_everything() -> None:
    channels = CtapHidChannels()
    channels.receive(init_report(BROADCAST_CID, Command.INIT, 8, b"n" * 8), 0.0)
    channels.receive(init_report(CID, Command.LOCK, 1, b"\x05"), 0.0)
    (dispatch,) = channels.receive(init_report(CID, Command.CBOR, 1, b"\x01"), 0.0)
    assert isinstance(dispatch, Dispatch)
    assert channels.power_cycle() == [Cancel(dispatch.token, discard=True)]
    assert channels.busy_cid is None and channels.locked_cid(0.0) is None
    (reply,) = channels.receive(init_report(BROADCAST_CID, Command.INIT, 8, b"n" * 8), 0.0)
    assert isinstance(reply, Reply) and InitResponse.decode(reply.payload).cid == 1
    (again,) = channels.receive(init_report(CID, Command.CBOR, 1, b"\x01"), 0.0)
    assert isinstance(again, Dispatch) and again.token > dispatch.token


def test_lock_times() -> None:
    channels = CtapHidChannels()
    assert channels.receive(init_report(CID, Command.LOCK, 1, b"\x02"), 100.0) == [
        Reply(CID, Command.LOCK, b"")
    ]
    assert channels.locked_cid(101.9) == CID
    assert channels.receive(init_report(7, Command.PING, 0), 101.9) == [
        error(7, HidErrorCode.CHANNEL_BUSY)
    ]
    assert channels.locked_cid(102.0) is None
    assert channels.receive(init_report(7, Command.PING, 0), 102.0) == [
        Reply(7, Command.PING, b"")
    ]


def test_authenticator_limit_applies_to_msg_and_cbor_only() -> None:
    channels = CtapHidChannels(max_msg_size=1200)
    assert channels.receive(init_report(CID, Command.CBOR, 1201), 0.0) == [
        error(CID, HidErrorCode.INVALID_LEN)
    ]
    assert channels.receive(init_report(CID, Command.MSG, 1201), 0.0) == [
        error(CID, HidErrorCode.INVALID_LEN)
    ]
    assert channels.receive(init_report(CID, Command.PING, 1201), 0.0) == []  # assembling


# ---------------------------------------------------------------------- properties

_VALID_ERRORS = {int(code) for code in HidErrorCode}
_CIDS = st.sampled_from([0, BROADCAST_CID, CID, 0x01, 0x02, 0x7FFFFFFF])


@st.composite
def reports(draw: st.DrawFn) -> bytes:
    """Mostly well-formed-looking reports aimed at the interesting states, plus pure noise."""
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(min_size=0, max_size=80))
    if kind == 1:
        return draw(st.binary(min_size=REPORT_SIZE, max_size=REPORT_SIZE))
    cid = draw(_CIDS)
    data = draw(st.binary(max_size=59))
    if kind <= 6:
        cmd = draw(
            st.one_of(st.sampled_from([int(c) for c in Command]), st.integers(0, 0x7F))
        )
        bcnt = draw(
            st.one_of(
                st.integers(0, 64), st.integers(0, 0xFFFF), st.just(8), st.just(MAX_MESSAGE_SIZE)
            )
        )
        return init_report(cid, cmd, bcnt, data)
    return cont_report(cid, draw(st.integers(0, 0x7F)), data)


def _check(actions: list[Action], report: bytes, channels: CtapHidChannels) -> None:
    """Every reply is a valid CTAPHID message, or there is none."""
    for action in actions:
        if isinstance(action, Reply):
            frames = encode_message(action.cid, action.cmd, action.payload)  # never too long
            assert all(len(frame) == REPORT_SIZE for frame in frames)
            if action.cmd == Command.ERROR:
                assert len(action.payload) == 1 and action.payload[0] in _VALID_ERRORS
            elif action.cmd == Command.INIT:
                sent = decode_packet(report)
                assert isinstance(sent, InitPacket)
                response = InitResponse.decode(action.payload)
                assert response.nonce == sent.payload
                assert response.cid not in (0, BROADCAST_CID)
            else:
                assert action.cmd in (Command.PING, Command.LOCK)
                assert action.cid not in (0, BROADCAST_CID)
        elif isinstance(action, Dispatch):
            assert action.cmd in (Command.MSG, Command.CBOR, Command.WINK)
            assert len(action.payload) <= channels.max_msg_size
            assert action.cid not in (0, BROADCAST_CID)


@settings(max_examples=400, deadline=200)
@given(st.binary(max_size=200))
def test_any_datagram_gives_a_valid_answer_or_silence(datagram: bytes) -> None:
    channels = CtapHidChannels(capabilities=CAPS)
    _check(channels.receive(datagram, 0.0), datagram, channels)


@settings(max_examples=300, deadline=500)
@given(
    steps=st.lists(
        st.tuples(reports(), st.floats(0, 0.7), st.booleans(), st.booleans()),
        max_size=60,
    ),
    caps=st.sampled_from([Capability.CBOR, CAPS, CAPS | Capability.NMSG]),
    max_msg_size=st.sampled_from([1024, 1200, MAX_MESSAGE_SIZE]),
)
def test_any_report_sequence_keeps_the_machine_sane(
    steps: list[tuple[bytes, float, bool, bool]],
    caps: Capability,
    max_msg_size: int,
) -> None:
    channels = CtapHidChannels(capabilities=caps, max_msg_size=max_msg_size, msg_timeout=0.5)
    now = 0.0
    running: list[int] = []
    for report, delay, finish, expire in steps:
        now += delay
        if expire:
            expired = channels.expire(now)
            assert all(
                isinstance(a, Reply) and a.payload == bytes([HidErrorCode.MSG_TIMEOUT])
                for a in expired
            )
        actions = channels.receive(report, now)
        _check(actions, report, channels)
        running += [a.token for a in actions if isinstance(a, Dispatch)]
        assert len([a for a in actions if isinstance(a, Dispatch)]) <= 1
        if channels.running_token is not None:
            assert channels.running_token == running[-1]
        if finish and running:
            channels.complete(running[-1])
        deadline = channels.next_deadline()
        assert deadline is None or deadline > now  # an overdue message never lingers
    channels.power_cycle()
    assert channels.busy_cid is None


@given(st.binary(min_size=8, max_size=8), st.integers(1, 0xFFFFFFFE))
def test_init_is_answered_whenever_not_locked_out(nonce: bytes, cid: int) -> None:
    channels = CtapHidChannels()
    channels.receive(init_report(CID, Command.PING, 300, b"x" * 57), 0.0)  # device busy
    for target in (BROADCAST_CID, cid):
        (reply,) = channels.receive(init_report(target, Command.INIT, 8, nonce), 0.1)
        assert isinstance(reply, Reply) and reply.cid == target
        assert InitResponse.decode(reply.payload).nonce == nonce


def test_init_response_layout() -> None:
    channels = CtapHidChannels(capabilities=CAPS, device_version=(3, 2, 1))
    (reply,) = channels.receive(init_report(BROADCAST_CID, Command.INIT, 8, b"ABCDEFGH"), 0.0)
    assert isinstance(reply, Reply)
    assert reply.payload == b"ABCDEFGH" + struct.pack(">IBBBBB", 1, 2, 3, 2, 1, 0x05)
