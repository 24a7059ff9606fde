"""Secure NFC and SEOS: present only on the fixtures that have them, refusing off the wrist."""

from __future__ import annotations

import pytest

from nymi_device.protocol.apdu import (
    AID_NYMI_SECURE_NFC,
    AID_SEOS,
    SW,
    CommandApdu,
    ResponseApdu,
    tlv_items,
)
from simulator.band.nfc.secure_nfc_applet import secure_nfc_identifier
from simulator.band.nfc.seos_applet import seos_container_id, seos_user_binding
from simulator.fixtures import all_fixtures
from tests.simulator.band_helpers import enroll

from .conftest import NfcBand, NfcBandFactory

FIXTURES = {f.id: f for f in all_fixtures()}


def select(nfc: NfcBand, aid: bytes) -> ResponseApdu:
    return nfc.send(CommandApdu(0x00, 0xA4, 0x04, 0x00, aid, le=256).encode())


def proprietary(fci: bytes) -> dict[int, bytes]:
    """The data objects of ``6F { 84 AID, A5 { ... } }``."""
    [(tag, body)] = tlv_items(fci)
    assert tag == 0x6F
    inner = dict(tlv_items(body))
    return dict(tlv_items(inner[0xA5]))


@pytest.mark.parametrize("fixture", sorted(FIXTURES))
def test_applets_answer_only_on_fixtures_that_have_them(
    nfc_band: NfcBandFactory, fixture: str
) -> None:
    caps = FIXTURES[fixture].capabilities
    nfc = nfc_band(fixture)
    assert select(nfc, AID_SEOS).sw == (SW.OK if caps.seos else SW.FILE_NOT_FOUND)
    assert select(nfc, AID_NYMI_SECURE_NFC).sw == (SW.OK if caps.secure_nfc else SW.FILE_NOT_FOUND)


@pytest.mark.parametrize(("fixture", "aid"), [
    ("nymi-band-3.0-secure-nfc", AID_NYMI_SECURE_NFC),
    ("nymi-band-3.0-seos", AID_SEOS),
])
@pytest.mark.parametrize("worn", [True, False])
def test_refused_while_not_authenticated(
    nfc_band: NfcBandFactory, fixture: str, aid: bytes, worn: bool
) -> None:
    nfc = nfc_band(fixture, authenticated=False, worn=worn)
    assert select(nfc, aid) == ResponseApdu(b"", SW.SECURITY_STATUS_NOT_SATISFIED)
    assert nfc.card.selected is None
    assert nfc.apdu("FFCA000000").ok  # the UID is the reader's business: always there


def test_secure_nfc_identifier(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0-secure-nfc")
    expected = secure_nfc_identifier(nfc.band.identity.device_id)
    answer = select(nfc, AID_NYMI_SECURE_NFC)
    fields = proprietary(answer.data)
    assert fields[0xC1] == expected and fields[0x50] == b"Nymi Secure NFC"
    assert nfc.apdu("00CA00C100") == ResponseApdu(bytes((0xC1, 16)) + expected, SW.OK)
    assert nfc.sw("00CA00C200") == SW.REFERENCED_DATA_NOT_FOUND
    assert nfc.sw("0020000000") == SW.INS_NOT_SUPPORTED
    assert nfc.sw("80CA00C100") == SW.CLA_NOT_SUPPORTED
    # Taken off the wrist while selected: the identifier is refused from then on.
    with nfc.band.lock:
        nfc.band.take_off()
    assert nfc.sw("00CA00C100") == SW.SECURITY_STATUS_NOT_SATISFIED


def test_secure_nfc_identifier_is_per_band_and_survives_delete_user_data(
    nfc_band: NfcBandFactory,
) -> None:
    first = nfc_band("nymi-band-3.0-secure-nfc", serial="SNFC-00001")
    second = nfc_band("nymi-band-3.0-secure-nfc", serial="SNFC-00002")
    one = proprietary(select(first, AID_NYMI_SECURE_NFC).data)[0xC1]
    two = proprietary(select(second, AID_NYMI_SECURE_NFC).data)[0xC1]
    assert one != two
    band = first.band
    band.take_off()
    band.erase_user_data()
    enroll(band)
    assert proprietary(select(first, AID_NYMI_SECURE_NFC).data)[0xC1] == one


def test_seos_container_is_per_band_and_bound_to_the_user(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0-seos")
    band = nfc.band
    container = seos_container_id(band.identity.device_id)
    fields = proprietary(select(nfc, AID_SEOS).data)
    assert fields[0xC0] == b"\x01" and fields[0xC1] == container
    assert band.user.template is not None
    assert fields[0xC2] == seos_user_binding(container, band.user.template)
    # Everything past SELECT is HID's proprietary protocol, which is not modelled.
    assert nfc.sw("0087000000") == SW.INS_NOT_SUPPORTED
    # Wiped and enrolled again: same container, bound to the new enrollment.
    band.take_off()
    band.erase_user_data()
    enroll(band)
    again = proprietary(select(nfc, AID_SEOS).data)
    assert again[0xC1] == container and again[0xC2] != fields[0xC2]
