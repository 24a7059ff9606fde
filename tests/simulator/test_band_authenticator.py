"""The authenticator wired to the band's real body (``BandWearer``): the wrist decides.

DOMAIN.md 4.2 / 10.3 rule 10: on a Nymi band a credential operation succeeds only while the band is
authenticated on the wrist; Delete User Data destroys every credential (crypto-erase), after which
an assertion with an old credential fails with CTAP2_ERR_NO_CREDENTIALS.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2

from nymi_device.protocol.model import Button
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.ctap.inprocess import InProcessCtapDevice
from simulator.band.wearer_bridge import BandWearer
from simulator.fleet import Fleet
from simulator.serve import live_band, make_ready

ES256 = [{"type": "public-key", "alg": -7}]


def _make(ctap2: Ctap2, *, uv: bool = True) -> bytes:
    made = ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"tw-user2"},
                                 ES256, options={"rk": True, **({"uv": True} if uv else {})})
    assert made.auth_data.is_user_verified() == uv
    assert made.auth_data.credential_data is not None
    return bytes(made.auth_data.credential_data.credential_id)


def test_wrist_authentication_gates_credentials_and_dud_destroys_them(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    with live_band(fleet, "AAAH-00125", auto_presence=False) as live:
        band, ctap2 = live.band, Ctap2(InProcessCtapDevice(live.authenticator))
        # Not on a wrist: refused.
        with pytest.raises(CtapError) as refused:
            _make(ctap2)
        assert refused.value.code == CtapError.ERR.OPERATION_DENIED
        assert make_ready(band) == ["put on a wrist", "enrolled"]
        cred = _make(ctap2)
        allow = [{"type": "public-key", "id": cred}]
        assert ctap2.get_assertion("example.com", os.urandom(32), allow).auth_data.is_user_present()
        # Off the wrist: deauthenticated, refused again.
        band.take_off()
        with pytest.raises(CtapError) as refused:
            ctap2.get_assertion("example.com", os.urandom(32), allow)
        assert refused.value.code == CtapError.ERR.OPERATION_DENIED
        # Delete User Data on the charger, then re-enroll: the old credential is gone.
        band.attach_charger()
        band.hold(Button.BOTTOM, 10)
        assert band.screen == "USER DATA DELETED"
        assert band.storage.keys("user/") == []
        make_ready(band)
        with pytest.raises(CtapError) as gone:
            ctap2.get_assertion("example.com", os.urandom(32), allow)
        assert gone.value.code == CtapError.ERR.NO_CREDENTIALS


def test_authenticator_reset_is_delete_user_data(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("ctap21-reference", "REFB-00001")
    with live_band(fleet, "REFB-00001", auto_presence=True) as live:
        make_ready(live.band)
        ctap2 = Ctap2(InProcessCtapDevice(live.authenticator))
        _make(ctap2, uv=False)  # no UV configured yet on the reference band
        live.authenticator.power_cycle()  # reset is only allowed just after power-up
        ctap2.reset()
        assert live.band.screen == "USER DATA DELETED"
        assert live.band.enrollment.value == "unenrolled"
        assert live.band.storage.keys("user/") == []


def test_band_wearer_follows_the_body(tmp_path: Path) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    with fleet.open_band("AAAH-00125") as band:
        wearer = BandWearer(band)
        assert not wearer.is_verified()
        make_ready(band)
        assert wearer.is_verified()
        auth = Authenticator(band.fixture, band.storage, wearer)
        assert auth.fixture.ctap is not None
