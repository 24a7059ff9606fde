"""CTAPHID over UDP, driven with raw datagrams on loopback and checked byte for byte."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import itertools
import socket
import struct
import time

import pytest

from nymi_device.protocol import TRAFFIC
from nymi_device.protocol.ctaphid import (
    BROADCAST_CID,
    MAX_MESSAGE_SIZE,
    REBOOT_DATAGRAM,
    Capability,
    Command,
    HidErrorCode,
    encode_message,
)
from simulator.frontends.ctaphid_udp import serve_ctaphid_udp

from .ctaphid_helpers import (
    KEEPALIVE_CANCEL,
    EchoAuthenticator,
    NoWinkAuthenticator,
    SlowAuthenticator,
    cont_report,
    error_bytes,
    eventually,
    init_report,
    raw_client,
    served,
)

NONCE = bytes.fromhex("0102030405060708")
CID = 0x0A0B0C0D  # never allocated by INIT: channels work without one


# ---------------------------------------------------------------------- contract and INIT


async def test_default_ports_contract_init_byte_for_byte() -> None:
    """Bound on 127.0.0.1:8111, every report goes to 127.0.0.1:7112."""
    async with contextlib.AsyncExitStack() as stack:
        try:
            server = await serve_ctaphid_udp(EchoAuthenticator())
            stack.push_async_callback(server.close)
            client = await stack.enter_async_context(
                raw_client(("127.0.0.1", 8111), local=("127.0.0.1", 7112))
            )
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                pytest.skip(f"UDP 8111 or 7112 is in use by another process: {exc}")
            raise
        assert server.address == ("127.0.0.1", 8111)
        client.send(init_report(BROADCAST_CID, Command.INIT, 8, NONCE))
        report = await client.recv()
        expected = (
            struct.pack(">IBH", BROADCAST_CID, 0x86, 17)
            + NONCE
            + struct.pack(">I", 1)  # first allocated channel
            + bytes([2, 1, 0, 0])  # CTAPHID version 2, device version 1.0.0
            + bytes([Capability.CBOR | Capability.WINK])
        ).ljust(64, b"\0")
        assert report == expected


async def test_init_allocates_distinct_channels_and_resyncs() -> None:
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        first = await client.init(b"AAAAAAAA")
        second = await client.init(b"BBBBBBBB")
        assert first != second and {first, second}.isdisjoint({0, BROADCAST_CID})

        # Resync mid-message: the half-received PING is dropped, INIT answers on that channel.
        client.send(init_report(first, Command.PING, 100, b"x" * 57))
        client.send(init_report(first, Command.INIT, 8, NONCE))
        cmd, payload = await client.recv_message(first)
        assert cmd == Command.INIT
        assert payload[:8] == NONCE and int.from_bytes(payload[8:12], "big") == first
        client.send(cont_report(first, 0, b"y" * 59))  # now spurious: ignored
        assert await client.silence()
        client.send(init_report(first, Command.PING, 3, b"abc"))
        assert await client.recv_message(first) == (Command.PING, b"abc")


async def test_init_resync_aborts_running_request() -> None:
    auth = SlowAuthenticator(duration=2.0)
    async with served(auth) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.CBOR, 2, b"\x01\xa0"))
        await asyncio.to_thread(auth.started.wait, 1)
        client.send(init_report(CID, Command.INIT, 8, NONCE))
        while True:  # keepalives may precede the INIT answer
            cmd, payload = await client.recv_message(CID)
            if cmd == Command.INIT:
                break
        assert payload[:12] == NONCE + CID.to_bytes(4, "big")
        assert await asyncio.to_thread(auth.cancelled.wait, 1)
        assert await client.silence(0.3)  # neither the CBOR answer nor keepalives follow


async def test_unknown_channel_is_served_without_init() -> None:
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.PING, 4, b"ping"))
        assert await client.recv() == init_report(CID, Command.PING, 4, b"ping")


# ---------------------------------------------------------------------- PING, MSG, CBOR, WINK


@pytest.mark.parametrize("size", [0, 57, 58, 1000, MAX_MESSAGE_SIZE])
async def test_ping_echoes_multi_packet_payload(size: int) -> None:
    payload = bytes(i % 251 for i in range(size))
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        for report in encode_message(CID, Command.PING, payload):
            client.send(report)
        received = [await client.recv() for _ in encode_message(CID, Command.PING, payload)]
        assert received == encode_message(CID, Command.PING, payload)


async def test_msg_goes_to_u2f_and_cbor_to_a_worker_thread() -> None:
    auth = EchoAuthenticator()
    async with served(auth) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.MSG, 5, b"\x00\x03\x00\x00\x00"))
        assert await client.recv_message(CID) == (Command.MSG, b"\x00\x03\x00\x00\x00\x90\x00")
        client.send(init_report(CID, Command.CBOR, 1, b"\x04"))
        assert await client.recv_message(CID) == (Command.CBOR, b"\x00\x04")
        assert auth.cbor_threads[-1].startswith("ctaphid-udp")


async def test_wink() -> None:
    auth = EchoAuthenticator()
    async with served(auth) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.WINK, 0))
        assert await client.recv() == init_report(CID, Command.WINK, 0)
        assert auth.winks == 1
        client.send(init_report(CID, Command.WINK, 1, b"\x01"))
        assert await client.recv() == error_bytes(CID, HidErrorCode.INVALID_LEN)


async def test_capabilities_follow_the_authenticator() -> None:
    """No wink() → no WINK capability; no U2F_V2 in getInfo → NMSG; maxMsgSize enforced."""
    async with served(NoWinkAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(BROADCAST_CID, Command.INIT, 8, NONCE))
        _, payload = await client.recv_message(BROADCAST_CID)
        assert payload[16] == Capability.CBOR | Capability.NMSG
        client.send(init_report(CID, Command.WINK, 0))
        assert await client.recv() == error_bytes(CID, HidErrorCode.INVALID_CMD)
        client.send(init_report(CID, Command.MSG, 4, b"\x00\x03\x00\x00"))
        assert await client.recv() == error_bytes(CID, HidErrorCode.INVALID_CMD)
        client.send(init_report(CID, Command.CBOR, NoWinkAuthenticator.MAX_MSG_SIZE + 1))
        assert await client.recv() == error_bytes(CID, HidErrorCode.INVALID_LEN)


# ---------------------------------------------------------------------- every CTAPHID error


async def test_errors_byte_for_byte() -> None:
    other = 0x01020304
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:

        async def expect(report: bytes, cid: int, code: HidErrorCode) -> None:
            client.send(report)
            assert await client.recv() == error_bytes(cid, code)

        # 0x01 INVALID_CMD: a vendor command, and KEEPALIVE sent by a host.
        await expect(init_report(CID, 0x7E, 0), CID, HidErrorCode.INVALID_CMD)
        await expect(init_report(CID, Command.KEEPALIVE, 1, b"\x01"), CID, HidErrorCode.INVALID_CMD)
        # 0x02 INVALID_PAR: a lock longer than 10 s.
        await expect(init_report(CID, Command.LOCK, 1, b"\x0b"), CID, HidErrorCode.INVALID_PAR)
        # 0x03 INVALID_LEN: INIT without an 8-byte nonce; a message over 7609 bytes.
        await expect(init_report(CID, Command.INIT, 7, NONCE), CID, HidErrorCode.INVALID_LEN)
        await expect(
            init_report(CID, Command.PING, MAX_MESSAGE_SIZE + 1), CID, HidErrorCode.INVALID_LEN
        )
        await expect(init_report(CID, Command.LOCK, 2, b"\x01\x01"), CID, HidErrorCode.INVALID_LEN)
        await expect(init_report(CID, Command.CBOR, 0), CID, HidErrorCode.INVALID_LEN)
        # 0x04 INVALID_SEQ: continuation 1 where 0 was due; a new request mid-message.
        client.send(init_report(CID, Command.PING, 100, b"p" * 57))
        await expect(cont_report(CID, 1, b"q" * 59), CID, HidErrorCode.INVALID_SEQ)
        client.send(init_report(CID, Command.PING, 100, b"p" * 57))
        await expect(init_report(CID, Command.PING, 1, b"z"), CID, HidErrorCode.INVALID_SEQ)
        # 0x06 CHANNEL_BUSY: another channel while a message is half received.
        client.send(init_report(CID, Command.PING, 100, b"p" * 57))
        await expect(init_report(other, Command.PING, 1, b"z"), other, HidErrorCode.CHANNEL_BUSY)
        await expect(cont_report(other, 0, b"z"), other, HidErrorCode.CHANNEL_BUSY)
        client.send(cont_report(CID, 0, b"q" * 59))
        assert await client.recv_message(CID) == (Command.PING, b"p" * 57 + b"q" * 43)
        # 0x0B INVALID_CHANNEL: channel 0, and the broadcast channel for anything but INIT.
        await expect(init_report(0, Command.PING, 1, b"z"), 0, HidErrorCode.INVALID_CHANNEL)
        await expect(init_report(0, Command.INIT, 8, NONCE), 0, HidErrorCode.INVALID_CHANNEL)
        await expect(
            init_report(BROADCAST_CID, Command.PING, 1, b"z"),
            BROADCAST_CID,
            HidErrorCode.INVALID_CHANNEL,
        )
        await expect(
            init_report(BROADCAST_CID, Command.CBOR, 1, b"\x04"),
            BROADCAST_CID,
            HidErrorCode.INVALID_CHANNEL,
        )
        assert await client.silence(0.1)


async def test_channel_busy_while_a_request_runs() -> None:
    auth = SlowAuthenticator(duration=0.5)
    async with served(auth) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.CBOR, 2, b"\x01\xa0"))
        await asyncio.to_thread(auth.started.wait, 1)
        client.send(init_report(0x55, Command.PING, 1, b"z"))
        client.send(init_report(CID, Command.PING, 1, b"z"))
        errors = []
        while len(errors) < 2:
            report = await client.recv()
            if report[4] != 0x80 | Command.KEEPALIVE:
                errors.append(report)
        assert errors == [
            error_bytes(0x55, HidErrorCode.CHANNEL_BUSY),
            error_bytes(CID, HidErrorCode.CHANNEL_BUSY),
        ]
        # The loop stays free: a broadcast INIT is answered while the request runs.
        new_cid = await client.init()
        assert new_cid not in (0, BROADCAST_CID)
        assert await client.recv_message(CID, timeout=2) == (Command.CBOR, b"\x00\x01\xa0")


async def test_msg_timeout_is_sent_unsolicited() -> None:
    async with served(EchoAuthenticator(), msg_timeout=0.2) as server, raw_client(
        server.address
    ) as client:
        sent = time.monotonic()
        client.send(init_report(CID, Command.PING, 200, b"s" * 57))
        arrived, report = await client.recv_timed(1.0)
        assert report == error_bytes(CID, HidErrorCode.MSG_TIMEOUT)
        assert 0.18 <= arrived - sent <= 0.45
        client.send(cont_report(CID, 0, b"late"))  # the message is gone: ignored
        assert await client.silence()


async def test_msg_timeout_default_is_half_a_second() -> None:
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.PING, 200, b"s" * 57))
        await asyncio.sleep(0.3)
        client.send(cont_report(CID, 0, b"t" * 59))  # each packet restarts the clock
        sent = time.monotonic()
        arrived, report = await client.recv_timed(1.5)
        assert report == error_bytes(CID, HidErrorCode.MSG_TIMEOUT)
        assert 0.45 <= arrived - sent <= 0.8


async def test_other_datagram_sizes_are_ignored() -> None:
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        for size in (0, 1, 63, 65, 128):
            client.send(init_report(CID, Command.PING, 1, b"z")[:size].ljust(size, b"\0"))
        assert await client.silence()
        client.send(init_report(CID, Command.PING, 1, b"z"))
        assert await client.recv() == init_report(CID, Command.PING, 1, b"z")


# ---------------------------------------------------------------------- LOCK


async def test_lock_reserves_the_device_for_one_channel() -> None:
    other = 0x99
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.LOCK, 1, b"\x0a"))
        assert await client.recv() == init_report(CID, Command.LOCK, 0)
        client.send(init_report(other, Command.PING, 1, b"z"))
        assert await client.recv() == error_bytes(other, HidErrorCode.CHANNEL_BUSY)
        client.send(init_report(BROADCAST_CID, Command.INIT, 8, NONCE))
        assert await client.recv() == error_bytes(BROADCAST_CID, HidErrorCode.CHANNEL_BUSY)
        client.send(init_report(CID, Command.PING, 1, b"z"))  # the holder is served
        assert await client.recv() == init_report(CID, Command.PING, 1, b"z")
        client.send(init_report(CID, Command.LOCK, 1, b"\x00"))  # 0 releases
        assert await client.recv() == init_report(CID, Command.LOCK, 0)
        client.send(init_report(other, Command.PING, 1, b"z"))
        assert await client.recv() == init_report(other, Command.PING, 1, b"z")


async def test_lock_expires() -> None:
    other = 0x99
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.LOCK, 1, b"\x01"))
        assert await client.recv() == init_report(CID, Command.LOCK, 0)
        client.send(init_report(other, Command.PING, 1, b"z"))
        assert await client.recv() == error_bytes(other, HidErrorCode.CHANNEL_BUSY)
        await asyncio.sleep(1.05)
        client.send(init_report(other, Command.PING, 1, b"z"))
        assert await client.recv() == init_report(other, Command.PING, 1, b"z")


# ---------------------------------------------------------------------- keepalive and CANCEL


async def test_cancel_during_keepalives() -> None:
    auth = SlowAuthenticator(duration=5.0, up_after=0.15)
    async with served(auth) as server, raw_client(server.address) as client:
        sent = time.monotonic()
        client.send(init_report(CID, Command.CBOR, 2, b"\x02\xa0"))
        times, statuses = [sent], []
        while time.monotonic() - sent < 0.6:
            arrived, report = await client.recv_timed(0.2)
            assert report[:7] == struct.pack(">IBH", CID, 0x80 | Command.KEEPALIVE, 1)
            times.append(arrived)
            statuses.append(report[7])
        gaps = [b - a for a, b in itertools.pairwise(times)]
        print(f"keepalive gaps (ms): {[round(g * 1000, 1) for g in gaps]}")
        assert max(gaps) <= 0.100
        assert statuses[0] == 1 and statuses[-1] == 2 and set(statuses) == {1, 2}

        client.send(init_report(CID, Command.CANCEL, 0))
        cancelled_at = time.monotonic()
        while True:  # no reply to CANCEL itself; the request ends with KEEPALIVE_CANCEL
            cmd, payload = await client.recv_message(CID)
            if cmd != Command.KEEPALIVE:
                break
        assert (cmd, payload) == (Command.CBOR, bytes([KEEPALIVE_CANCEL]))
        assert time.monotonic() - cancelled_at < 0.1
        assert auth.cancelled.is_set()
        assert await client.silence()


async def test_cancel_without_a_request_is_silent() -> None:
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.CANCEL, 0))
        client.send(init_report(0x77, Command.CANCEL, 0))
        assert await client.silence()


# ---------------------------------------------------------------------- power cycle


@pytest.mark.parametrize("via", ["reboot-datagram", "power_cycle"])
async def test_power_cycle_loses_volatile_state(via: str) -> None:
    auth = SlowAuthenticator(duration=2.0)
    async with served(auth) as server, raw_client(server.address) as client:
        # Volatile state: a running request on CID, and a lock held by CID.
        client.send(init_report(CID, Command.LOCK, 1, b"\x0a"))
        assert await client.recv() == init_report(CID, Command.LOCK, 0)
        client.send(init_report(CID, Command.CBOR, 2, b"\x01\xa0"))
        await asyncio.to_thread(auth.started.wait, 1)

        started = time.monotonic()
        if via == "reboot-datagram":
            assert len(REBOOT_DATAGRAM) == 64
            client.send(REBOOT_DATAGRAM)
        else:
            server.power_cycle()
        # Drain keepalives sent before the cycle; then the device must answer another channel.
        while True:
            client.send(init_report(BROADCAST_CID, Command.INIT, 8, NONCE))
            report = await client.recv(0.5)
            if report[:4] == BROADCAST_CID.to_bytes(4, "big"):
                break
        recovery = time.monotonic() - started
        print(f"{via}: serving again after {recovery * 1000:.2f} ms")
        assert recovery < 0.1
        assert report[7:15] == NONCE
        assert int.from_bytes(report[15:19], "big") == 1  # channel numbering restarted
        assert server.power_cycles == 1
        assert await asyncio.to_thread(auth.cancelled.wait, 1)
        # The authenticator's own power cycle follows the aborted request on the worker.
        assert await eventually(lambda: auth.power_cycles == 1)
        # The lock is gone and the aborted request never answers.
        client.send(init_report(0x99, Command.PING, 1, b"z"))
        assert await client.recv() == init_report(0x99, Command.PING, 1, b"z")
        assert await client.silence(0.3)


async def test_power_cycle_drops_a_half_received_message() -> None:
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        client.send(init_report(CID, Command.PING, 100, b"p" * 57))
        await asyncio.sleep(0.02)
        client.send(REBOOT_DATAGRAM)
        client.send(cont_report(CID, 0, b"q" * 59))
        assert await client.silence()  # no reply to the reboot, the continuation is spurious


async def test_power_cycle_from_another_thread() -> None:
    auth = EchoAuthenticator()
    async with served(auth) as server:
        await asyncio.to_thread(server.power_cycle)
        assert await eventually(lambda: auth.power_cycles == 1 and server.power_cycles == 1)


async def test_port_in_use_raises_oserror() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(OSError):
            await serve_ctaphid_udp(EchoAuthenticator(), port=taken.getsockname()[1])


async def test_each_datagram_is_logged_as_hex_at_traffic_level(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(TRAFFIC, logger="simulator.frontends.ctaphid_udp")
    async with served(EchoAuthenticator()) as server, raw_client(server.address) as client:
        request = init_report(CID, Command.PING, 2, b"hi")
        client.send(request)
        await client.recv()
    traffic = [r.getMessage() for r in caplog.records if r.levelno == TRAFFIC]
    assert any(m.startswith("RECV") and m.endswith(request.hex()) for m in traffic)
    assert any(m.startswith("SEND") and m.endswith(request.hex()) for m in traffic)
