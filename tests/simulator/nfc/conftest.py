"""A band with its card OS, driven with raw APDUs."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from nymi_device.protocol.apdu import ResponseApdu
from simulator.band.band import EmulatedBand
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.ctap.wearer import PresenceResult, SampleResult, UvResult, Wearer
from simulator.band.nfc import CardOS, build_card_os
from simulator.band.wearer_bridge import BandWearer
from simulator.fixtures import load_fixture
from tests.simulator.band_helpers import enroll, make_band

SELECT_FIDO = "00A4040008A0000006472F000100"


@dataclass
class NfcBand:
    band: EmulatedBand
    authenticator: Authenticator | None
    card: CardOS

    def send(self, raw: bytes) -> ResponseApdu:
        return ResponseApdu.parse(self.card.transmit(raw))

    def apdu(self, text: str) -> ResponseApdu:
        return self.send(bytes.fromhex(text.replace(" ", "")))

    def sw(self, text: str) -> int:
        return self.apdu(text).sw


class RefusingWearer:
    """A wearer that refuses at once and changes nothing (no UV attempt is consumed)."""

    def is_verified(self) -> bool:
        return False

    def wait_for_presence(self, timeout_s: float, cancel: threading.Event) -> PresenceResult:
        return PresenceResult.DENIED

    def verify_user(self, timeout_s: float, cancel: threading.Event) -> UvResult:
        return UvResult.TIMEOUT

    def capture_enrollment_sample(self, timeout_s: float, cancel: threading.Event) -> SampleResult:
        return SampleResult.timeout()

    def erase_user_data(self) -> None:
        raise AssertionError("a refusing wearer never erases")


NfcBandFactory = Callable[..., NfcBand]


@pytest.fixture
def nfc_band(tmp_path: Path) -> Iterator[NfcBandFactory]:
    """``nfc_band(fixture_id, authenticated=True, worn=True, wearer=None, serial=...)``."""
    made: list[NfcBand] = []

    def make(fixture_id: str, *, authenticated: bool = True, worn: bool = True,
             wearer: Callable[[EmulatedBand], Wearer] | None = None,
             serial: str = "AAAH-00125", **card_options: float) -> NfcBand:
        fixture = load_fixture(fixture_id)
        band = make_band(fixture, tmp_path / f"{serial}-{len(made)}", serial)
        enroll(band)
        if not authenticated:
            band.take_off()
            band.settle()
            if worn:
                band.put_on()
                band.settle()
        elif not worn:
            raise ValueError("an authenticated band is worn")
        authenticator = None
        if fixture.ctap is not None:
            the_wearer = wearer(band) if wearer else BandWearer(band)
            authenticator = Authenticator(fixture, band.storage, the_wearer)
        card = build_card_os(band, authenticator, **card_options)
        nfc = NfcBand(band, authenticator, card)
        made.append(nfc)
        return nfc

    yield make
    for nfc in made:
        nfc.card.close()
        nfc.band.storage.close()
