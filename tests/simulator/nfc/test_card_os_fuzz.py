"""Arbitrary APDUs to the card OS: always a status word, never an exception, never a change of
the band's flash."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nymi_device.protocol.apdu import AID_FIDO, AID_NYMI_SECURE_NFC, AID_SEOS, SW, CommandApdu
from simulator.fixtures import all_fixtures

from .conftest import NfcBand, NfcBandFactory, RefusingWearer

FIXTURES = [f.id for f in all_fixtures()]
AIDS = [AID_FIDO, AID_SEOS, AID_NYMI_SECURE_NFC, AID_FIDO[:5], b"\xa0" * 17]


@st.composite
def structured(draw: st.DrawFn) -> bytes:
    """Commands near the ones the card OS knows, in short and extended form."""
    cla = draw(st.sampled_from([0x00, 0x10, 0x80, 0x90, 0xFF, 0x01, 0x0C, 0x40, 0xA0])
               | st.integers(0, 255))
    ins = draw(st.sampled_from([0xA4, 0xC0, 0xCA, 0x10, 0x11, 0x01, 0x02, 0x03, 0x87])
               | st.integers(0, 255))
    p1 = draw(st.sampled_from([0x00, 0x04, 0x80, 0x11]) | st.integers(0, 255))
    p2 = draw(st.sampled_from([0x00, 0x0C, 0xC1]) | st.integers(0, 255))
    data = draw(st.sampled_from(AIDS) | st.binary(max_size=300))
    le = draw(st.none() | st.sampled_from([1, 7, 256, 65536]) | st.integers(1, 65536))
    try:
        command = CommandApdu(cla, ins, p1, p2, data, le, draw(st.booleans()))
    except ValueError:
        return bytes((cla, ins, p1, p2))
    return command.encode()


#: SELECTs of the known applets are mixed in, so the commands after them reach the applets.
SELECTS = st.sampled_from(AIDS).map(
    lambda aid: CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, 256).encode())
APDUS = st.lists(SELECTS | st.binary(max_size=40) | structured(), min_size=1, max_size=12)


def check(nfc: NfcBand, apdus: list[bytes]) -> None:
    before = nfc.band.storage.snapshot()
    for raw in apdus:
        answer = nfc.card.transmit(raw)
        assert isinstance(answer, bytes) and len(answer) >= 2
        assert answer[-2:] != bytes.fromhex("6F00"), f"internal failure on {raw.hex()}"
    assert nfc.band.storage.snapshot() == before


def _safe_when_authenticated(raw: bytes) -> bool:
    """Leave out what may legitimately change the flash on a band that is authenticated:
    CTAP requests (a random one may be a valid reset or makeCredential) and U2F register and
    authenticate, which consume a signature counter."""
    if len(raw) < 2:
        return True
    cla, ins = raw[0] & ~0x10, raw[1]
    return not ((cla == 0x80 and ins == 0x10) or (cla == 0x00 and ins in (0x01, 0x02)))


@pytest.mark.parametrize("fixture", FIXTURES)
def test_not_authenticated_band_never_fails_nor_changes(
    nfc_band: NfcBandFactory, fixture: str
) -> None:
    # The reference model's presence waits for a button: refuse at once instead.
    wearer = (lambda band: RefusingWearer()) if fixture == "ctap21-reference" else None
    nfc = nfc_band(fixture, authenticated=False, wearer=wearer)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(APDUS)
    def run(apdus: list[bytes]) -> None:
        nfc.card.power_on()
        check(nfc, apdus)

    run()


@pytest.mark.parametrize("fixture", ["nymi-band-3.0-seos", "nymi-band-3.0-secure-nfc"])
def test_authenticated_band_never_fails_nor_changes(
    nfc_band: NfcBandFactory, fixture: str
) -> None:
    nfc = nfc_band(fixture)

    @settings(max_examples=150, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(APDUS.map(lambda apdus: [a for a in apdus if _safe_when_authenticated(a)]))
    def run(apdus: list[bytes]) -> None:
        nfc.card.power_on()
        check(nfc, apdus)

    run()


def test_status_words_are_named() -> None:
    assert SW(0x6A82).name == "FILE_NOT_FOUND"
