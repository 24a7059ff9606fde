"""The CTAPHID-UDP front end in front of a band's authenticator (``BandWearer``).

* INIT advertises CAPABILITY_WINK where the band has a vibration motor, and WINK is one vibration.
* The reboot datagram is the band's power cycle: its RAM goes, wrist authentication included.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

from nymi_device.protocol.ctaphid import REBOOT_DATAGRAM, Capability, Command
from nymi_device.protocol.model import BandEvent, EventKind
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.wearer_bridge import BandWearer
from simulator.fixtures import load_fixture
from tests.simulator.band_helpers import enroll, make_band

from .ctaphid_helpers import eventually, init_report, raw_client, served


async def test_wink_over_ctaphid_udp_is_one_vibration(tmp_path: Path) -> None:
    band = make_band(load_fixture("ctap21-reference"), tmp_path)
    enroll(band)
    events: list[BandEvent] = []
    band.subscribe(events.append)
    authenticator = Authenticator(band.fixture, band.storage, BandWearer(band))
    async with served(authenticator) as server, raw_client(server.address) as client:
        assert server.channels.capabilities & Capability.WINK
        cid = await client.init()
        client.send(init_report(cid, Command.WINK, 0))
        assert await client.recv_message(cid) == (Command.WINK, b"")
    assert [e.data for e in events if e.kind == EventKind.HAPTIC] == [{"pattern": "single"}]


async def test_reboot_datagram_power_cycles_the_whole_band(tmp_path: Path) -> None:
    band = make_band(load_fixture("nymi-band-3.0"), tmp_path)
    enroll(band)
    assert band.is_authenticated
    authenticator = Authenticator(band.fixture, band.storage, BandWearer(band))
    async with served(authenticator) as server, raw_client(server.address) as client:
        client.send(REBOOT_DATAGRAM)
        assert await eventually(lambda: server.power_cycles == 1)
        await asyncio.sleep(0.05)  # the power cycle runs on the front end's worker
        assert await eventually(lambda: not band.is_authenticated)
    assert band.auth.value == "auth-required" and band.enrollment.value == "enrolled"
