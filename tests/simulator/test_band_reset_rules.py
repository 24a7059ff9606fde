"""authenticatorReset, power cycles and wipes on a band with a body (``BandWearer``).

* On a Nymi band authenticatorReset is Delete User Data, so it demands what Delete User Data
  demands: the band off the wrist, on its charger, the bottom button held while the request
  arrives. A worn, authenticated band refuses with CTAP2_ERR_OPERATION_DENIED and changes
  nothing, whatever the reset window says (CTAP 2.1 §6.6 lets an authenticator refuse).
* A power cycle asked of the authenticator (the CTAPHID-UDP reboot datagram, the control API) is
  the band's: its RAM goes, wrist authentication included.
* An authenticator built on a band registers its own hooks: a wipe by the gesture drops its
  caches even when no server wired it up.
* CTAPHID_WINK is one vibration where the band has a motor.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.hid import CAPABILITY, CTAPHID

from nymi_device.protocol.model import BandEvent, Button, EventKind
from simulator.band.band import EmulatedBand
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.ctap.inprocess import InProcessCtapDevice
from simulator.band.wearer_bridge import BandWearer
from simulator.fixtures import load_fixture
from tests.simulator.band_helpers import enroll, make_band

ES256 = [{"type": "public-key", "alg": -7}]
RP = "example.com"


def _worn_band(tmp_path: Path, fixture_id: str = "nymi-band-3.0") -> EmulatedBand:
    band = make_band(load_fixture(fixture_id), tmp_path)
    enroll(band)
    assert band.is_authenticated
    return band


def _credential(ctap2: Ctap2) -> bytes:
    made = ctap2.make_credential(os.urandom(32), {"id": RP}, {"id": b"u"}, ES256,
                                 options={"rk": True, "uv": True})
    assert made.auth_data.credential_data is not None
    return bytes(made.auth_data.credential_data.credential_id)


def _assert(ctap2: Ctap2, cred: bytes) -> None:
    ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": cred}],
                        options={"uv": True})


def test_a_worn_band_refuses_reset_even_just_after_power_up(tmp_path: Path) -> None:
    band = _worn_band(tmp_path)
    authenticator = Authenticator(band.fixture, band.storage, BandWearer(band))
    ctap2 = Ctap2(InProcessCtapDevice(authenticator))
    cred = _credential(ctap2)
    authenticator.lose_power()  # the field came up: the reset window is open
    with pytest.raises(CtapError) as refused:
        ctap2.reset()
    assert refused.value.code == CtapError.ERR.OPERATION_DENIED
    assert band.enrollment.value == "enrolled"
    _assert(ctap2, cred)


def test_the_reboot_request_is_a_real_power_cycle(tmp_path: Path) -> None:
    band = _worn_band(tmp_path)
    authenticator = Authenticator(band.fixture, band.storage, BandWearer(band))
    ctap2 = Ctap2(InProcessCtapDevice(authenticator))
    cred = _credential(ctap2)
    authenticator.power_cycle()  # what the CTAPHID-UDP reboot datagram asks for
    assert not band.is_authenticated  # the band's RAM went with it
    assert band.auth.value == "auth-required"
    with pytest.raises(CtapError) as refused:
        ctap2.reset()
    assert refused.value.code == CtapError.ERR.OPERATION_DENIED
    with pytest.raises(CtapError) as no_uv:
        _assert(ctap2, cred)
    assert no_uv.value.code == CtapError.ERR.OPERATION_DENIED
    band.place_finger()
    band.settle()
    _assert(ctap2, cred)  # flash kept: the credential is still there


def test_reset_during_the_delete_gesture_deletes_user_data(tmp_path: Path) -> None:
    band = _worn_band(tmp_path)
    authenticator = Authenticator(band.fixture, band.storage, BandWearer(band))
    ctap2 = Ctap2(InProcessCtapDevice(authenticator))
    cred = _credential(ctap2)
    band.take_off()
    band.attach_charger()
    with pytest.raises(CtapError) as not_yet:  # off the wrist, on the charger, no button
        ctap2.reset()
    assert not_yet.value.code == CtapError.ERR.OPERATION_DENIED
    band.press(Button.BOTTOM)
    band.clock.advance(2)
    ctap2.reset()
    band.release(Button.BOTTOM)
    assert band.enrollment.value == "unenrolled"
    assert band.storage.keys("user/") == []
    enroll(band)
    with pytest.raises(CtapError) as gone:
        _assert(ctap2, cred)
    assert gone.value.code == CtapError.ERR.NO_CREDENTIALS


def test_an_embedded_authenticator_follows_the_band_wipe(tmp_path: Path) -> None:
    band = _worn_band(tmp_path)
    authenticator = Authenticator(band.fixture, band.storage, BandWearer(band))  # no server
    ctap2 = Ctap2(InProcessCtapDevice(authenticator))
    cred = _credential(ctap2)
    band.take_off()
    band.attach_charger()
    band.hold(Button.BOTTOM, band.fixture.timing.wipe_hold_s)
    assert band.screen == "USER DATA DELETED"
    band.detach_charger()
    enroll(band)
    with pytest.raises(CtapError) as gone:
        _assert(ctap2, cred)
    assert gone.value.code == CtapError.ERR.NO_CREDENTIALS


@pytest.mark.parametrize("haptics", [True, False])
def test_wink_is_one_vibration(tmp_path: Path, haptics: bool) -> None:
    fixture = load_fixture("ctap21-reference")
    fixture = fixture.model_copy(update={"capabilities": fixture.capabilities.model_copy(
        update={"haptics": haptics})})
    band = make_band(fixture, tmp_path)
    enroll(band)
    device = InProcessCtapDevice(Authenticator(fixture, band.storage, BandWearer(band)))
    assert bool(device.capabilities & CAPABILITY.WINK) == haptics
    events: list[BandEvent] = []
    band.subscribe(events.append)
    if haptics:
        assert device.call(CTAPHID.WINK) == b""
        assert [e.data for e in events if e.kind == EventKind.HAPTIC] == [{"pattern": "single"}]
    else:
        with pytest.raises(CtapError) as no_wink:
            device.call(CTAPHID.WINK)
        assert no_wink.value.code == CtapError.ERR.INVALID_COMMAND
        assert not [e for e in events if e.kind == EventKind.HAPTIC]
