"""Building and driving emulated bands in tests."""

from __future__ import annotations

from pathlib import Path

from nymi_device.protocol.model import EventKind
from simulator.band.band import EmulatedBand
from simulator.band.records import BandPolicy, Identity
from simulator.band.storage import FlashStorage
from simulator.clock import VirtualClock
from simulator.fixtures import Fixture, all_fixtures

FIXTURES = all_fixtures()


def fixtures_where(predicate: object) -> list[Fixture]:
    assert callable(predicate)
    return [f for f in FIXTURES if predicate(f)]


def make_band(fixture: Fixture, tmp_path: Path, serial: str = "AAAH-00125") -> EmulatedBand:
    storage = FlashStorage.open(tmp_path / f"flash-{serial}", durable=False)
    return EmulatedBand.create(fixture, storage, VirtualClock(), Identity.new(serial, fixture.id))


def enroll(band: EmulatedBand, *, label: str | None = "tw-user2",
           policy: BandPolicy | None = None, corporate: bool = False) -> None:
    """Walk the NBA's enrollment steps on a band worn on the wrist."""
    if not band.on_wrist:
        band.put_on()
    band.enter_setup_code(band.setup_code or "")
    band.start_capture()
    for _ in range(band.fixture.limits.enrollment_touches):
        band.place_finger()
        band.settle()
    band.set_label(label)
    if corporate:
        band.add_corporate_authenticator()
    band.apply_policy(policy or BandPolicy())
    band.settle()


def screens_since(band: EmulatedBand, mark: int) -> list[str]:
    return [str(e.data["screen"]) for e in band.events[mark:] if e.kind == EventKind.SCREEN]


def haptics_since(band: EmulatedBand, mark: int) -> list[str]:
    return [str(e.data["pattern"]) for e in band.events[mark:] if e.kind == EventKind.HAPTIC]
