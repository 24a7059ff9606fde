"""The ``Band`` facade over the ``sim:`` backend, the sync bridge, and the error contract."""

from __future__ import annotations

import asyncio

import pytest

from nymi_device.band import Band
from nymi_device.errors import (
    BandCommandError,
    BandError,
    BandUnreachableError,
    InvalidTargetError,
    StatusCode,
    UnreachableReason,
)
from nymi_device.protocol.model import BandStatus, EventKind
from nymi_device.sync import SyncBand
from simulator.fleet import Fleet


async def test_info_status_and_live_events(nymi_fleet: Fleet, nymi_band: str) -> None:
    async with Band.from_target(f"sim:{nymi_band}", sim_dir=nymi_fleet.root) as band:
        assert band.backend_id.startswith(f"sim:{nymi_band}")
        assert (await band.info()).serial == nymi_band
        status = await band.status()
        assert BandStatus.from_dict(status.to_dict()) == status
        stream = band.events()
        first = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0.05)
        # The simulator's hand moves the world of the band this facade holds open.
        await asyncio.to_thread(band.backend.control, "wear")  # type: ignore[attr-defined]
        event = await asyncio.wait_for(first, timeout=5)
        assert event.kind == EventKind.WRIST and event.data == {"on_wrist": True}
        assert (await band.status()).screen == "Setup code"
        recent = await band.recent_events(3)
        assert [e.kind for e in recent][-1] == EventKind.SCREEN
        await stream.aclose()


def test_sync_bridge(nymi_fleet: Fleet, nymi_band: str) -> None:
    with SyncBand(f"sim:{nymi_band}", sim_dir=nymi_fleet.root) as band:
        assert band.info().model == "Nymi Band 3.0"
        assert band.status().enrollment == "unenrolled"


async def test_unknown_band_is_unreachable_not_found(nymi_fleet: Fleet) -> None:
    with pytest.raises(BandUnreachableError) as info:
        await Band.open("sim:ZZZZ-00001", {"sim_dir": nymi_fleet.root})
    assert info.value.reason == UnreachableReason.NOT_FOUND
    assert isinstance(info.value, ConnectionError) and isinstance(info.value, BandError)


@pytest.mark.parametrize("target", ["", "sim", ":x", "nosuch:thing"])
def test_bad_targets_are_invalid_input(target: str) -> None:
    with pytest.raises(InvalidTargetError) as info:
        Band.from_target(target)
    assert isinstance(info.value, ValueError)


def test_unknown_status_codes_survive() -> None:
    assert StatusCode(0x5A) is StatusCode.UNKNOWN
    err = BandCommandError(0x5A)
    assert err.status is StatusCode.UNKNOWN and err.raw_status == 0x5A
    assert "0x5a" in str(err)
    assert "locked out" in str(BandCommandError(StatusCode.LOCKED_OUT))
