"""Throughput of CTAPHID over UDP on loopback: PING round trips and getAssertion per second.

Runs the band's CTAPHID/UDP front end on a private event loop thread and drives it from this
thread with python-fido2 (``CtapHidDevice`` over ``UdpCtapHidConnection``), exactly as a FIDO2
test suite would. For comparison it also measures getAssertion in-process on the same
authenticator (bare ``process_cbor``, and python-fido2's ``Ctap2`` on a direct in-process device),
so the transport's share of the cost can be read off.
"""

from __future__ import annotations

import asyncio
import hashlib
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from fido2 import cbor
from fido2.ctap2.base import Ctap2

from bench.core import Context, Figure, Series, Suite, Values
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
    return count / (time.perf_counter() - started)


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


def measure(ctx: Context) -> Values:
    seconds = ctx.pick(0.15, 0.8)
    rows: Values = {}
    if True:
        authenticator = _authenticator(Path(tempfile.mkdtemp(dir=ctx.scratch)))
        server, stop = _start_server(authenticator)
        try:
            with open_udp_hid_device(port=server.address[1], local_port=0) as device:
                rows["ping16"] = _rate(
                    "CTAPHID PING, 16 bytes, over UDP",
                    seconds,
                    lambda: device.ping(b"x" * 16),
                )
                rows["ping1024"] = _rate(
                    "CTAPHID PING, 1024 bytes (18 reports each way)",
                    seconds,
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
                allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": credential_id}]
                rows["udp"] = _rate(
                    "getAssertion over CTAPHID/UDP (Ctap2)",
                    seconds,
                    lambda: ctap2.get_assertion(RP_ID, client_data_hash, allow),
                )
                request = b"\x02" + cbor.encode({1: RP_ID, 2: client_data_hash, 3: allow})
                rows["raw"] = _rate(
                    "getAssertion over CTAPHID/UDP (raw CBOR call)",
                    seconds,
                    lambda: device.call(0x10, request),
                )
        finally:
            stop()
        rows["local"] = _rate(
            "getAssertion in-process (process_cbor)",
            seconds,
            lambda: authenticator.process_cbor(request),
        )
        in_process = Ctap2(InProcessCtapDevice(authenticator))
        rows["ctap2_local"] = _rate(
            "getAssertion in-process (Ctap2, no transport)",
            seconds,
            lambda: in_process.get_assertion(RP_ID, client_data_hash, allow),
        )
    for key in ("ping16", "ping1024", "raw", "udp", "local", "ctap2_local"):
        rows[f"{key}_us"] = 1e6 / rows[key]
    return rows


SUITE = Suite(
    name="ctaphid_udp",
    title="FIDO2 over CTAPHID-UDP",
    measure=measure,
    figures=[
        Figure("ping16_us", "CTAPHID PING, 16 bytes", "µs"),
        Figure("ping1024_us", "CTAPHID PING, 1024 bytes (18 reports each way)", "µs",
               reference="ping16_us"),
        Figure("raw_us", "getAssertion, raw CTAPHID CBOR call", "µs", reference="local_us"),
        Figure("udp_us", "getAssertion, python-fido2 `Ctap2` over UDP", "µs",
               reference="ctap2_local_us"),
        Figure("ctap2_local_us", "getAssertion, python-fido2 `Ctap2` in-process (no transport)",
               "µs", reference="local_us"),
        Figure("local_us", "getAssertion, `process_cbor` in-process", "µs"),
    ],
    series=[Series("CTAPHID PING round trip", "payload bytes",
                   ((16, "ping16_us"), (1024, "ping1024_us")))],
    prose="""
The front end on its own event-loop thread, driven from the benchmark's thread by python-fido2
(`CtapHidDevice` over our UDP connection) as a FIDO2 test suite would. Over UDP the
authenticator's own work is a small share of the exchange; the rest is datagrams and the
hand-off to the worker thread that lets the front end keep sending KEEPALIVEs (every 50 ms
measured while a request waits for the wearer).
""",
)
