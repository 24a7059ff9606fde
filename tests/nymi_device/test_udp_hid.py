"""Host side of CTAPHID over UDP: python-fido2's CtapHidDevice on our UDP connection."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest
from fido2.hid import CAPABILITY, CtapHidDevice

from nymi_device.errors import BandUnreachableError, InvalidTargetError, UnreachableReason
from nymi_device.fido import open_ctap_device, parse_udp_address, supported_schemes
from nymi_device.protocol.ctaphid import REBOOT_DATAGRAM
from nymi_device.transport.udp_hid import UdpCtapHidConnection, open_udp_hid_device
from tests.frontends.ctaphid_helpers import (
    EchoAuthenticator,
    SlowAuthenticator,
    eventually,
    served,
)


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_ctap_hid_device_over_udp() -> None:
    auth = EchoAuthenticator()
    async with served(auth) as server:

        def session() -> None:
            with open_udp_hid_device(port=server.address[1], local_port=0) as device:
                assert isinstance(device, CtapHidDevice)
                assert device.version == 2 and device.device_version == (1, 0, 0)
                assert CAPABILITY.CBOR.supported(device.capabilities)
                assert CAPABILITY.WINK.supported(device.capabilities)
                assert device.ping(b"x" * 3000) == b"x" * 3000
                device.wink()
                device.lock(0)
                assert device.call(0x10, b"\x04\xa0") == b"\x00\x04\xa0"

        await asyncio.to_thread(session)
        assert auth.winks == 1


async def test_keepalives_reach_the_callback_and_cancel_works() -> None:
    auth = SlowAuthenticator(duration=3.0, up_after=0.1)
    async with served(auth) as server:

        def session() -> list[int]:
            seen: list[int] = []
            cancel = threading.Event()

            def on_keepalive(status: int) -> None:
                seen.append(int(status))
                if status == 2:
                    cancel.set()

            with open_udp_hid_device(port=server.address[1], local_port=0) as device:
                # CtapHidDevice returns the CBOR status byte; Ctap2 would raise it.
                assert device.call(0x10, b"\x01\xa0", cancel, on_keepalive) == b"\x2d"
            return seen

        assert await asyncio.to_thread(session) == [1, 2]
        assert auth.cancelled.is_set()


def test_read_times_out_with_a_clear_error() -> None:
    # Something is bound on the "authenticator" port, but it never answers.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        started = time.monotonic()
        with pytest.raises(BandUnreachableError) as caught:
            open_udp_hid_device(port=port, local_port=0, timeout=0.3)
        elapsed = time.monotonic() - started
    assert caught.value.reason is UnreachableReason.TRANSPORT_FAILED
    assert isinstance(caught.value, ConnectionError)
    assert f"udp:127.0.0.1:{port}" in str(caught.value)
    assert 0.3 <= elapsed < 1.0


def test_nothing_listening_is_not_found() -> None:
    port = _free_udp_port()
    with pytest.raises(BandUnreachableError) as caught:
        open_udp_hid_device(port=port, local_port=0, timeout=1.0)
    assert caught.value.reason is UnreachableReason.NOT_FOUND


def test_local_port_in_use_is_reported() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", 0))
        with pytest.raises(BandUnreachableError) as caught:
            UdpCtapHidConnection(local_port=taken.getsockname()[1])
    assert caught.value.reason is UnreachableReason.TRANSPORT_FAILED


def test_odd_sized_datagrams_are_skipped_and_reboot_is_sent() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as peer:
        peer.bind(("127.0.0.1", 0))
        peer.settimeout(1)
        connection = UdpCtapHidConnection(
            port=peer.getsockname()[1], local_port=0, timeout=1.0
        )
        try:
            peer.sendto(b"short", connection.local_address)
            peer.sendto(bytes(65), connection.local_address)
            peer.sendto(bytes(range(64)), connection.local_address)
            assert connection.read_packet() == bytes(range(64))
            connection.write_packet(bytes(64))
            assert peer.recv(100) == bytes(64)
            with pytest.raises(ValueError):
                connection.write_packet(bytes(63))
            connection.power_cycle()
            assert peer.recv(100) == REBOOT_DATAGRAM
        finally:
            connection.close()


async def test_power_cycle_through_the_connection() -> None:
    auth = EchoAuthenticator()
    async with served(auth) as server:

        def cycle() -> None:
            connection = UdpCtapHidConnection(port=server.address[1], local_port=0)
            try:
                connection.power_cycle()
            finally:
                connection.close()

        await asyncio.to_thread(cycle)
        assert await eventually(lambda: auth.power_cycles == 1 and server.power_cycles == 1)


# ---------------------------------------------------------------------- the factory


async def test_open_ctap_device_udp() -> None:
    async with served(EchoAuthenticator()) as server:

        def session() -> bytes:
            target = f"udp:127.0.0.1:{server.address[1]}"
            with open_ctap_device(target, local_port=0) as device:
                return device.call(0x01, b"hello")

        assert await asyncio.to_thread(session) == b"hello"


@pytest.mark.parametrize(
    "target",
    ["udp", "udp:", "udp:127.0.0.1", "udp:127.0.0.1:", "udp:127.0.0.1:x", "udp:h:70000"],
)
def test_bad_udp_targets(target: str) -> None:
    with pytest.raises(InvalidTargetError):
        open_ctap_device(target)


def test_unsupported_scheme_and_options() -> None:
    assert "udp" in supported_schemes()
    with pytest.raises(InvalidTargetError, match=r"supported: .*udp"):
        open_ctap_device("carrier-pigeon:coop")
    with pytest.raises(InvalidTargetError, match="unknown udp option"):
        open_ctap_device("udp:127.0.0.1:8111", colour="blue")
    assert parse_udp_address("localhost:8111") == ("localhost", 8111, None)
    assert parse_udp_address("127.0.0.1:46211/46212") == ("127.0.0.1", 46211, 46212)
    for bad in ("127.0.0.1", "127.0.0.1:0", "127.0.0.1:8111/", "127.0.0.1:8111/70000", ":1"):
        with pytest.raises(InvalidTargetError, match="HOST:PORT"):
            parse_udp_address(bad)


async def test_defaults_match_the_simulator_contract() -> None:
    """``udp:127.0.0.1:8111`` with the default local port 7112 reaches a default server."""
    from simulator.frontends.ctaphid_udp import serve_ctaphid_udp

    try:
        server = await serve_ctaphid_udp(EchoAuthenticator())
    except OSError as exc:
        pytest.skip(f"UDP 8111 is in use: {exc}")
    try:

        def session() -> bytes:
            with open_ctap_device("udp:127.0.0.1:8111") as device:
                return device.call(0x01, b"contract")

        try:
            assert await asyncio.to_thread(session) == b"contract"
        except BandUnreachableError as exc:
            if "Address already in use" in str(exc):
                pytest.skip(f"UDP 7112 is in use: {exc}")
            raise
    finally:
        await server.close()
