"""Throughput of CTAPHID over UDP on loopback: PING round trips and getAssertion per second.

Runs the band's CTAPHID/UDP front end on a private event loop thread and drives it from this
thread with python-fido2 (``CtapHidDevice`` over ``UdpCtapHidConnection``), exactly as a FIDO2
test suite would. For comparison it also measures getAssertion in-process on the same
authenticator (bare ``process_cbor``, and python-fido2's ``Ctap2`` on a direct in-process device),
so the transport's share of the cost can be read off.

    .venv/bin/python bench/bench_ctaphid_udp.py [--seconds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

from fido2 import cbor
from fido2.ctap2 import Ctap2

from nymi_device.transport.udp_hid import open_udp_hid_device
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.ctap.inprocess import InProcessCtapDevice
from simulator.band.ctap.wearer import AutoWearer
from simulator.band.storage import FlashStorage
from simulator.fixtures import load_fixture
from simulator.frontends.ctaphid_udp import CtapHidAuthenticator, CtapHidUdpServer

RP_ID = "example.com"


def _authenticator(directory: Path) -> Authenticator:
    storage = FlashStorage.open(directory / "flash")
    return Authenticator(load_fixture("ctap21-reference"), storage, AutoWearer(storage))


def _rate(label: str, seconds: float, operation: Callable[[], object]) -> float:
    operation()  # warm up
    count = 0
    started = time.perf_counter()
    deadline = started + seconds
    while time.perf_counter() < deadline:
        operation()
        count += 1
    rate = count / (time.perf_counter() - started)
    print(f"{label:<48} {rate:10.0f} /s   ({1e6 / rate:8.1f} µs each, n={count})")
    return rate


def _start_server(
    authenticator: CtapHidAuthenticator,
) -> tuple[CtapHidUdpServer, Callable[[], None]]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="bench-server", daemon=True)
    thread.start()
    server = CtapHidUdpServer(authenticator, port=0, peer=None)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result()

    def stop() -> None:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        thread.join()
        loop.close()

    return server, stop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=3.0, help="duration of each measurement")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        authenticator = _authenticator(Path(tmp))
        server, stop = _start_server(authenticator)
        try:
            with open_udp_hid_device(port=server.address[1], local_port=0) as device:
                _rate(
                    "CTAPHID PING, 16 bytes, over UDP",
                    args.seconds,
                    lambda: device.ping(b"x" * 16),
                )
                _rate(
                    "CTAPHID PING, 1024 bytes (18 reports each way)",
                    args.seconds,
                    lambda: device.ping(b"x" * 1024),
                )
                ctap2 = Ctap2(device)
                client_data_hash = hashlib.sha256(b"bench").digest()
                made = ctap2.make_credential(
                    client_data_hash,
                    {"id": RP_ID, "name": "Bench"},
                    {"id": b"bench-user", "name": "bench"},
                    [{"type": "public-key", "alg": -7}],
                )
                assert made.auth_data.credential_data is not None
                credential_id = made.auth_data.credential_data.credential_id
                allow = [{"type": "public-key", "id": credential_id}]
                udp = _rate(
                    "getAssertion over CTAPHID/UDP (Ctap2)",
                    args.seconds,
                    lambda: ctap2.get_assertion(RP_ID, client_data_hash, allow),
                )
                request = b"\x02" + cbor.encode({1: RP_ID, 2: client_data_hash, 3: allow})
                raw = _rate(
                    "getAssertion over CTAPHID/UDP (raw CBOR call)",
                    args.seconds,
                    lambda: device.call(0x10, request),
                )
        finally:
            stop()
        local = _rate(
            "getAssertion in-process (process_cbor)",
            args.seconds,
            lambda: authenticator.process_cbor(request),
        )
        in_process = Ctap2(InProcessCtapDevice(authenticator))
        _rate(
            "getAssertion in-process (Ctap2, no transport)",
            args.seconds,
            lambda: in_process.get_assertion(RP_ID, client_data_hash, allow),
        )
        print(
            f"raw CTAPHID/UDP call: {raw / local:.3f}x of in-process process_cbor; "
            f"Ctap2 over UDP: {udp:.0f}/s"
        )

if __name__ == "__main__":
    main()
