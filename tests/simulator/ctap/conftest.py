"""Shared helpers for the authenticator tests: a band on tmp flash, driven by python-fido2."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from fido2.ctap2 import Ctap2

from simulator.band.ctap import Authenticator, AutoWearer, ScriptedWearer, Wearer
from simulator.band.ctap.inprocess import InProcessCtapDevice
from simulator.band.storage import FlashStorage
from simulator.fixtures import FIXTURE_DIR, Fixture, load_fixture

NYMI = "nymi-band-3.0"
NYMI_FIXTURES = ["nymi-band-3.0", "nymi-band-3.0-secure-nfc", "nymi-band-3.0-seos"]
REFERENCE = "ctap21-reference"


class FakeClock:
    """Band time under the test's control."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Band:
    """One simulated band's authenticator on its own flash directory."""

    fixture_id: str
    path: Path
    storage: FlashStorage
    wearer: Wearer
    clock: FakeClock
    auth: Authenticator
    device: InProcessCtapDevice
    _ctap2: Ctap2 | None = field(default=None, repr=False)

    @property
    def ctap2(self) -> Ctap2:
        if self._ctap2 is None:
            self._ctap2 = Ctap2(self.device)
        return self._ctap2

    def cbor(self, request: bytes) -> bytes:
        return self.auth.process_cbor(request)


WearerFactory = Callable[[FlashStorage], Wearer]


def fixture_with(fixture_id: str, **ctap_changes: object) -> Fixture:
    """A fixture whose [ctap] table has some fields changed (for limits and absent features)."""
    fixture = load_fixture(fixture_id)
    if not ctap_changes:
        return fixture
    assert fixture.ctap is not None
    return fixture.model_copy(update={"ctap": fixture.ctap.model_copy(update=ctap_changes)})


def open_band(
    path: Path,
    fixture_id: str,
    wearer: WearerFactory | None = None,
    *,
    clock: FakeClock | None = None,
    durable: bool = False,
    ctap: dict[str, object] | None = None,
) -> Band:
    storage = FlashStorage.open(path, durable=durable)
    the_wearer = wearer(storage) if wearer else AutoWearer(storage)
    the_clock = clock or FakeClock()
    fixture = fixture_with(fixture_id, **(ctap or {}))
    auth = Authenticator(fixture, storage, the_wearer, clock=the_clock)
    return Band(fixture_id, path, storage, the_wearer, the_clock, auth, InProcessCtapDevice(auth))


def reopen(band: Band) -> Band:
    """Close the flash and build a new authenticator on it (a restart of the band)."""
    band.storage.close()
    return open_band(band.path, band.fixture_id, lambda s: AutoWearer(s), clock=band.clock)


@pytest.fixture
def make_band(tmp_path: Path) -> Iterator[Callable[..., Band]]:
    opened: list[Band] = []
    counter = iter(range(1000))

    def make(
        fixture_id: str = REFERENCE, wearer: WearerFactory | None = None, **kw: object
    ) -> Band:
        band = open_band(tmp_path / f"band{next(counter)}", fixture_id, wearer, **kw)  # type: ignore[arg-type]
        opened.append(band)
        return band

    yield make
    for band in opened:
        band.storage.close()


@pytest.fixture
def scripted() -> Callable[..., WearerFactory]:
    """``scripted(verified=False, presence=[...])`` -> a wearer factory for :func:`make_band`."""

    def factory(**kwargs: object) -> WearerFactory:
        return lambda storage: ScriptedWearer(storage, **kwargs)  # type: ignore[arg-type]

    return factory


def simulation_root_der() -> bytes:
    pem = (FIXTURE_DIR / "attestation" / "simulation-root-ca.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
