"""The FIDO applet: CTAP 2.1 §11.3 (SELECT, NFCCTAP_MSG, NFCCTAP_GETRESPONSE with 9100, U2F)."""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future

import cbor2
import pytest

from nymi_device.protocol.apdu import SW, CommandApdu, ResponseApdu
from nymi_device.protocol.model import Button
from simulator.band.nfc import CardOS, FidoApplet
from simulator.fixtures import load_fixture

from .conftest import SELECT_FIDO, NfcBand, NfcBandFactory
from .test_card_os import fetch_all, make_credential_request, msg

REFERENCE = "ctap21-reference"


def reference_request() -> bytes:
    """makeCredential for the reference band (no built-in UV asked: presence is a press)."""
    return make_credential_request(uv=False)
CTAP_FIXTURES = ["ctap21-reference", "nymi-band-3.0", "nymi-band-3.0-secure-nfc",
                 "nymi-band-3.0-seos"]
KEEPALIVE_UPNEEDED = 2
CTAP2_ERR_OPERATION_DENIED = 0x27
CTAP2_ERR_KEEPALIVE_CANCEL = 0x2D


def press_top(nfc: NfcBand) -> None:
    with nfc.band.lock:
        nfc.band.press(Button.TOP)
        nfc.band.release(Button.TOP)


def poll(nfc: NfcBand, timeout: float = 5.0) -> ResponseApdu:
    """NFCCTAP_GETRESPONSE until the answer is final, as a client does."""
    deadline = time.monotonic() + timeout
    while True:
        answer = nfc.apdu("8011000000")
        if answer.sw != SW.STATUS_UPDATE or time.monotonic() > deadline:
            return answer
        time.sleep(0.01)


@pytest.mark.parametrize("fixture", CTAP_FIXTURES)
def test_select_and_get_info(nfc_band: NfcBandFactory, fixture: str) -> None:
    nfc = nfc_band(fixture)
    assert nfc.apdu(SELECT_FIDO) == ResponseApdu(b"U2F_V2", SW.OK)
    spec = load_fixture(fixture).ctap
    assert spec is not None
    for p1 in (0x00, 0x80):
        answer = nfc.send(msg(b"\x04", p1=p1).encode())
        data, sw = fetch_all(nfc, answer)
        assert sw == SW.OK and data[0] == 0
        assert uuid.UUID(bytes=cbor2.loads(data[1:])[3]) == uuid.UUID(spec.aaguid)


def test_select_answers_fido_2_0_without_u2f(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0")
    assert nfc.authenticator is not None
    applet = FidoApplet(nfc.authenticator, u2f=False)
    select = CommandApdu.parse(bytes.fromhex(SELECT_FIDO))
    assert applet.select(select) == ResponseApdu(b"FIDO_2_0", SW.OK)
    assert applet.process(CommandApdu(0x00, 0x03, 0x00, 0x00, le=256)).sw == SW.INS_NOT_SUPPORTED
    applet.close()


def test_status_update_while_the_authenticator_waits_for_the_wearer(
    nfc_band: NfcBandFactory,
) -> None:
    nfc = nfc_band(REFERENCE)  # presence is a press of the top button
    assert nfc.apdu(SELECT_FIDO).ok
    first = nfc.send(msg(reference_request()).encode())
    assert first == ResponseApdu(bytes((KEEPALIVE_UPNEEDED,)), SW.STATUS_UPDATE)
    assert nfc.apdu("8011000000") == first  # still waiting: 9100 + UPNEEDED again
    assert nfc.sw("8010800001" + "04" + "00") == SW.CONDITIONS_NOT_SATISFIED  # busy
    assert nfc.sw("0003000000") == SW.CONDITIONS_NOT_SATISFIED  # U2F while busy
    press_top(nfc)
    data, sw = fetch_all(nfc, poll(nfc))
    assert sw == SW.OK and data[0] == 0 and cbor2.loads(data[1:])[1] == "packed"
    assert nfc.sw("8011000000") == SW.CONDITIONS_NOT_SATISFIED  # delivered: nothing pending


def test_without_getresponse_support_the_answer_waits(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band(REFERENCE)
    assert nfc.apdu(SELECT_FIDO).ok
    pending = nfc.card.submit(msg(reference_request(), p1=0x00).encode())
    assert isinstance(pending, Future) and not pending.done()
    press_top(nfc)
    first = ResponseApdu.parse(pending.result(timeout=5))
    data, sw = fetch_all(nfc, first)
    assert sw == SW.OK and data[0] == 0 and cbor2.loads(data[1:])[1] == "packed"


def test_getresponse_cancel(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band(REFERENCE)
    assert nfc.apdu(SELECT_FIDO).ok
    assert nfc.send(msg(reference_request()).encode()).sw == SW.STATUS_UPDATE
    answer = nfc.apdu("8011110000")
    assert answer == ResponseApdu(bytes((CTAP2_ERR_KEEPALIVE_CANCEL,)), SW.OK)


def test_selecting_again_abandons_the_waiting_request(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band(REFERENCE)
    assert nfc.apdu(SELECT_FIDO).ok
    assert nfc.send(msg(reference_request()).encode()).sw == SW.STATUS_UPDATE
    assert nfc.apdu(SELECT_FIDO).ok  # deselect + select: the request is cancelled
    assert nfc.sw("8011000000") == SW.CONDITIONS_NOT_SATISFIED
    # The worker is free again: a new request waits for its own press and completes.
    assert nfc.send(msg(reference_request()).encode()).sw == SW.STATUS_UPDATE
    press_top(nfc)
    assert fetch_all(nfc, poll(nfc))[1] == SW.OK


def test_field_loss_abandons_the_waiting_request(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band(REFERENCE)
    assert nfc.apdu(SELECT_FIDO).ok
    assert nfc.send(msg(reference_request()).encode()).sw == SW.STATUS_UPDATE
    nfc.card.power_off()
    nfc.card.power_on()
    assert nfc.apdu(SELECT_FIDO).ok
    answer = nfc.send(msg(b"\x04").encode())
    assert fetch_all(nfc, answer)[1] == SW.OK


def test_nymi_band_not_on_the_wrist_refuses_but_answers(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0", authenticated=False)
    assert nfc.apdu(SELECT_FIDO).ok
    answer = nfc.send(msg(make_credential_request()).encode())
    assert answer == ResponseApdu(bytes((CTAP2_ERR_OPERATION_DENIED,)), SW.OK)


def test_nymi_band_answers_at_once(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0")
    assert nfc.apdu(SELECT_FIDO).ok
    answer = nfc.card.submit(msg(make_credential_request(), p1=0x00).encode())
    assert isinstance(answer, bytes)  # no wait for the wearer, no future
    assert ResponseApdu.parse(answer).sw1 == 0x61


def test_u2f_over_nfc(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0")
    assert nfc.apdu(SELECT_FIDO).ok
    assert nfc.apdu("0003000000") == ResponseApdu(b"U2F_V2", SW.OK)
    register = CommandApdu(0x00, 0x01, 0x03, 0x00, os.urandom(64), le=256)
    data, sw = fetch_all(nfc, nfc.send(register.encode()))
    assert sw == SW.OK and data[0] == 0x05  # reserved byte of a registration response
    assert nfc.sw("0001030001" + "00") == SW.WRONG_LENGTH  # U2F's own length check


class SlowAuthenticator:
    """Computes for a while, then waits for the wearer until released."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def process_cbor(self, request: bytes, *, cancel: threading.Event | None = None,
                     keepalive: Callable[[int], None] | None = None) -> bytes:
        time.sleep(0.05)
        assert keepalive is not None
        keepalive(KEEPALIVE_UPNEEDED)
        self.release.wait(5)
        return b"\x00\xa0"

    def process_u2f(self, apdu: bytes) -> bytes:
        return b"\x6d\x00"


def test_a_late_status_update_then_the_result() -> None:
    authenticator = SlowAuthenticator()
    applet = FidoApplet(authenticator, u2f=False, inline_wait_s=0.01, user_grace_s=0.001)
    card = CardOS([applet], uid=b"\x04\x01\x02\x03\x04\x05\x06")
    assert card.transmit(bytes.fromhex(SELECT_FIDO)) == b"FIDO_2_0\x90\x00"
    pending = card.submit(msg(b"\x02\xa0").encode())  # a request that runs in the worker
    assert isinstance(pending, Future)  # still computing when the inline budget ran out
    assert ResponseApdu.parse(pending.result(5)) == ResponseApdu(b"\x02", SW.STATUS_UPDATE)
    authenticator.release.set()
    deadline = time.monotonic() + 5
    while (answer := ResponseApdu.parse(card.transmit(bytes.fromhex("8011000000")))).sw == (
            SW.STATUS_UPDATE) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert answer == ResponseApdu(b"\x00\xa0", SW.OK)
    card.close()
