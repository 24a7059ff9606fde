"""Each datagram's sender gets the answers to it (CTAPHID over UDP, the default server).

A host that follows the public tooling's contract sends from 127.0.0.1:7112 and so is answered
there; any other process sending to the same port gets its own answers on its own port and never
disturbs the first host's exchanges.
"""

from __future__ import annotations

import asyncio

from nymi_device.protocol.ctaphid import Command
from simulator.frontends.ctaphid_udp import CtapHidUdpServer

from .ctaphid_helpers import EchoAuthenticator, SlowAuthenticator, init_report, raw_client


async def test_two_hosts_on_their_own_ports_each_get_their_answers() -> None:
    server = CtapHidUdpServer(EchoAuthenticator(), port=0)  # the defaults, but a free port
    await server.start()
    try:
        async with raw_client(server.address) as first, raw_client(server.address) as second:
            cid_a = await first.init(b"AAAAAAAA")
            cid_b = await second.init(b"BBBBBBBB")
            first.send(init_report(cid_a, Command.PING, 3, b"one"))
            second.send(init_report(cid_b, Command.PING, 3, b"two"))
            assert await first.recv_message(cid_a) == (Command.PING, b"one")
            assert await second.recv_message(cid_b) == (Command.PING, b"two")
            assert await first.silence(0.1) and await second.silence(0.1)
    finally:
        await server.close()


async def test_a_running_request_answers_its_own_sender_while_another_talks() -> None:
    server = CtapHidUdpServer(SlowAuthenticator(duration=0.3), port=0)
    await server.start()
    try:
        async with raw_client(server.address) as host, raw_client(server.address) as noisy:
            cid = await host.init(b"HOSTHOST")
            other = await noisy.init(b"NOISYNOI")
            host.send(init_report(cid, Command.CBOR, 1, b"\x07"))
            for _ in range(5):  # another process keeps talking meanwhile
                noisy.send(init_report(other, Command.PING, 1, b"x"))
                await asyncio.sleep(0.02)
            cmd, payload = await host.recv_message(cid, timeout=3.0)
            assert cmd == Command.CBOR and payload[:1] == b"\x00"
    finally:
        await server.close()
