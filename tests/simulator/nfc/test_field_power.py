"""Leaving the reader's field is a power cycle of the FIDO interface (CTAP 2.1 §6.5.5.7, §6.6).

The band runs on its battery, but its FIDO interface over NFC runs on the field: when the field
goes away its volatile state goes (pinUvAuthTokens, key agreement, the block after three wrong
PINs in a row, any stateful command) and the 10 s reset window opens again with the next field.
The band's own state (wrist authentication) is not touched. python-fido2 drives the card OS
through a reader stand-in whose connect / disconnect are the field coming and going, as pcscd's
vpcd driver does (power on, get ATR / power off).
"""

from __future__ import annotations

import os
import threading
from typing import Any

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, Ctap2
from fido2.ctap2.pin import PinProtocolV2
from fido2.pcsc import CtapPcscDevice

from nymi_device.protocol.model import Button
from simulator.band.nfc import CardOS

from .conftest import NfcBand, NfcBandFactory

PIN = "a1b2c3d4"
ES256 = [{"type": "public-key", "alg": -7}]


class FieldReader:
    """What python-fido2 needs of a pyscard connection: the field is connect / disconnect."""

    def __init__(self, card: CardOS) -> None:
        self.card = card

    def connect(self, *args: Any, **kwargs: Any) -> None:
        self.card.power_on()

    def disconnect(self) -> None:
        self.card.power_off()

    def getATR(self) -> list[int]:
        return list(self.card.atr)

    def transmit(self, apdu: list[int], protocol: Any = None) -> tuple[list[int], int, int]:
        answer = self.card.transmit(bytes(apdu))
        return list(answer[:-2]), answer[-2], answer[-1]


def _device(card: CardOS) -> CtapPcscDevice:
    return CtapPcscDevice(FieldReader(card), "field")  # type: ignore[arg-type]


def _reconnect(device: CtapPcscDevice) -> None:
    """What python-fido2's device suite does to power-cycle an NFC authenticator."""
    device.close()
    device.connect()


def test_pin_block_lifts_when_the_field_goes(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("ctap21-reference")
    device = _device(nfc.card)
    pin = ClientPin(Ctap2(device), PinProtocolV2())
    pin.set_pin(PIN)
    codes = []
    for _ in range(3):
        with pytest.raises(CtapError) as wrong:
            pin.get_pin_token("12345678")
        codes.append(wrong.value.code)
    assert codes == [CtapError.ERR.PIN_INVALID] * 2 + [CtapError.ERR.PIN_AUTH_BLOCKED]
    with pytest.raises(CtapError) as blocked:
        pin.get_pin_token(PIN)
    assert blocked.value.code == CtapError.ERR.PIN_AUTH_BLOCKED
    assert pin.get_pin_retries() == (5, True)
    _reconnect(device)
    pin = ClientPin(Ctap2(device), PinProtocolV2())
    assert pin.get_pin_retries() == (5, False)  # the block lifts; the counter does not
    with pytest.raises(CtapError) as again:
        pin.get_pin_token("12345678")
    assert again.value.code == CtapError.ERR.PIN_INVALID
    assert pin.get_pin_token(PIN)
    assert pin.get_pin_retries() == (8, False)


def test_tokens_do_not_survive_the_field(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("ctap21-reference")
    device = _device(nfc.card)
    ctap2 = Ctap2(device)
    protocol = PinProtocolV2()
    pin = ClientPin(ctap2, protocol)
    pin.set_pin(PIN)
    token = pin.get_pin_token(PIN, ClientPin.PERMISSION.MAKE_CREDENTIAL, "example.com")
    _reconnect(device)
    cdh = os.urandom(32)
    with pytest.raises(CtapError) as stale:
        Ctap2(device).make_credential(cdh, {"id": "example.com"}, {"id": b"u"}, ES256,
                                      pin_uv_param=protocol.authenticate(token, cdh),
                                      pin_uv_protocol=protocol.VERSION)
    assert stale.value.code == CtapError.ERR.PIN_AUTH_INVALID


def test_the_reset_window_opens_with_the_field(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("ctap21-reference")
    device = _device(nfc.card)
    ClientPin(Ctap2(device), PinProtocolV2()).set_pin(PIN)
    assert nfc.authenticator is not None
    nfc.authenticator._core.power_up -= 60  # the band has been on the reader for a minute
    with pytest.raises(CtapError) as late:
        Ctap2(device).reset()
    assert late.value.code == CtapError.ERR.NOT_ALLOWED
    _reconnect(device)
    ctap2 = Ctap2(device)
    _reset_with_press(nfc, ctap2)  # presence on the reference band is the top button
    assert ctap2.get_info().options["clientPin"] is False


def _reset_with_press(nfc: NfcBand, ctap2: Ctap2) -> None:
    def press_when_asked(status: int) -> None:
        if status == 2:  # UPNEEDED
            def press() -> None:
                with nfc.band.lock:
                    nfc.band.press(Button.TOP)
                    nfc.band.release(Button.TOP)
            threading.Timer(0.05, press).start()

    ctap2.reset(on_keepalive=press_when_asked)


def test_the_band_stays_authenticated_through_the_field(nfc_band: NfcBandFactory) -> None:
    nfc = nfc_band("nymi-band-3.0")
    device = _device(nfc.card)
    _reconnect(device)
    _reconnect(device)
    assert nfc.band.is_authenticated
    made = Ctap2(device).make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u"},
                                         ES256, options={"uv": True})
    assert made.auth_data.is_user_verified()
