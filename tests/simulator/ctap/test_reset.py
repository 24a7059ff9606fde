"""Reset and Delete User Data destroy credentials, PIN and large blobs (CTAP 2.1 §6.6)."""

from __future__ import annotations

import os

import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, LargeBlobs
from fido2.ctap2.pin import PinProtocolV2

from simulator.band.ctap import PresenceResult

from .conftest import NYMI, REFERENCE

ERR = CtapError.ERR
ES256 = [{"type": "public-key", "alg": -7}]
RP = "example.com"


def _credentials(band, uv: bool):  # type: ignore[no-untyped-def]
    opts = {"uv": True} if uv else {}
    made = [
        band.ctap2.make_credential(
            os.urandom(32), {"id": RP}, {"id": user}, ES256, options={**opts, "rk": rk}
        ).auth_data.credential_data.credential_id
        for user, rk in ((b"resident", True), (b"plain", False))
    ]
    return made


@pytest.mark.parametrize("fixture_id", [NYMI, REFERENCE])
def test_delete_user_data_then_no_credentials(make_band, fixture_id: str) -> None:
    band = make_band(fixture_id)
    uv = fixture_id == NYMI
    ids = _credentials(band, uv)
    opts = {"uv": True} if uv else None
    for cred_id in ids:
        band.ctap2.get_assertion(
            RP, os.urandom(32), [{"type": "public-key", "id": cred_id}], options=opts
        )
    # The band's Delete User Data: crypto-erase, then the authenticator drops its caches.
    band.storage.crypto_erase()
    band.auth.on_user_data_erased()
    for cred_id in ids:
        with pytest.raises(CtapError) as exc:
            band.ctap2.get_assertion(
                RP, os.urandom(32), [{"type": "public-key", "id": cred_id}], options=opts
            )
        assert exc.value.code == ERR.NO_CREDENTIALS
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion(RP, os.urandom(32), options=opts)
    assert exc.value.code == ERR.NO_CREDENTIALS
    assert not band.storage.keys("user/ctap/")


def test_reset_erases_credentials_pin_and_blobs(make_band) -> None:
    band = make_band(REFERENCE)
    ids = _credentials(band, uv=False)
    key = band.ctap2.make_credential(
        os.urandom(32),
        {"id": RP},
        {"id": b"b"},
        ES256,
        options={"rk": True},
        extensions={"largeBlobKey": True},
    ).large_blob_key
    LargeBlobs(band.ctap2).put_blob(key, b"secret blob")
    ClientPin(band.ctap2, PinProtocolV2()).set_pin("1234")
    band.ctap2.reset()
    info = band.ctap2.get_info()
    assert info.options["clientPin"] is False and info.remaining_disc_creds == 100
    assert LargeBlobs(band.ctap2).read_blob_array() == []
    for cred_id in ids:
        with pytest.raises(CtapError) as exc:
            band.ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": cred_id}])
        assert exc.value.code == ERR.NO_CREDENTIALS


def test_reset_preconditions(make_band, scripted) -> None:
    band = make_band(REFERENCE, scripted())
    cred = _credentials(band, uv=False)[1]
    band.wearer.presence.extend([PresenceResult.DENIED, PresenceResult.TIMEOUT])
    with pytest.raises(CtapError) as exc:
        band.ctap2.reset()
    assert exc.value.code == ERR.OPERATION_DENIED
    with pytest.raises(CtapError) as exc:
        band.ctap2.reset()
    assert exc.value.code == ERR.USER_ACTION_TIMEOUT
    band.clock.advance(10.5)  # more than 10 s after power-up
    with pytest.raises(CtapError) as exc:
        band.ctap2.reset()
    assert exc.value.code == ERR.NOT_ALLOWED
    band.ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": cred}])
    band.auth.power_cycle()  # the window reopens
    band.ctap2.reset()
    assert band.wearer.erased == 1
    with pytest.raises(CtapError) as exc:
        band.ctap2.get_assertion(RP, os.urandom(32), [{"type": "public-key", "id": cred}])
    assert exc.value.code == ERR.NO_CREDENTIALS


def test_nymi_reset_needs_the_wrist(make_band, scripted) -> None:
    band = make_band(NYMI, scripted(verified=False))
    with pytest.raises(CtapError) as exc:
        band.ctap2.reset()
    assert exc.value.code == ERR.OPERATION_DENIED
    assert band.wearer.erased == 0
