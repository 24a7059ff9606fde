"""The Nymi band's body: credentials only while authenticated on the wrist."""

from __future__ import annotations

import hashlib
import os
import threading

import pytest
from fido2.ctap import CtapError
from fido2.ctap1 import ApduError, Ctap1

from simulator.band.ctap import PresenceResult

from .conftest import NYMI, NYMI_FIXTURES

ERR = CtapError.ERR
ES256 = [{"type": "public-key", "alg": -7}]


def _make(band, **kw):  # type: ignore[no-untyped-def]
    return band.ctap2.make_credential(
        os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256, options={"uv": True, **kw}
    )


@pytest.mark.parametrize("fixture_id", NYMI_FIXTURES)
def test_refuses_while_not_on_the_wrist(make_band, scripted, fixture_id: str) -> None:
    band = make_band(fixture_id, scripted(verified=True))
    cred = _make(band, rk=True).auth_data.credential_data.credential_id
    allow = [{"type": "public-key", "id": cred}]
    band.wearer.verified = False  # the band comes off the wrist
    for call in (
        lambda: _make(band),
        lambda: band.ctap2.get_assertion("example.com", os.urandom(32), allow),
        lambda: band.ctap2.get_assertion("example.com", os.urandom(32), options={"uv": True}),
        lambda: band.ctap2.get_assertion(
            "example.com", os.urandom(32), allow, options={"up": False}
        ),
    ):
        with pytest.raises(CtapError) as exc:
            call()
        assert exc.value.code == ERR.OPERATION_DENIED
    with pytest.raises(ApduError) as apdu:
        Ctap1(band.device).register(os.urandom(32), hashlib.sha256(b"x").digest())
    assert apdu.value.code == 0x6985
    band.wearer.verified = True  # authenticated again
    assert band.ctap2.get_assertion(
        "example.com", os.urandom(32), allow
    ).auth_data.is_user_present()


def test_make_credential_needs_uv_on_nymi(make_band) -> None:
    # uv=true in getInfo, no makeCredUvNotRqd, no clientPin: without "uv" the request is
    # refused with OPERATION_DENIED (§6.1.2 step 8.1.2).
    band = make_band(NYMI)
    with pytest.raises(CtapError) as exc:
        band.ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256)
    assert exc.value.code == ERR.OPERATION_DENIED
    made = _make(band)
    assert made.auth_data.is_user_verified() and made.auth_data.is_user_present()


def test_presence_denied_timeout_and_cancel(make_band, scripted) -> None:
    band = make_band(NYMI, scripted(presence=[PresenceResult.DENIED, PresenceResult.TIMEOUT]))
    with pytest.raises(CtapError) as exc:
        _make(band)
    assert exc.value.code == ERR.OPERATION_DENIED
    with pytest.raises(CtapError) as exc:
        _make(band)
    assert exc.value.code == ERR.OPERATION_DENIED  # a presence timeout, §6.1.2 step 14.2
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CtapError) as exc:
        band.ctap2.make_credential(
            os.urandom(32),
            {"id": "example.com"},
            {"id": b"u"},
            ES256,
            options={"uv": True},
            event=cancel,
        )
    assert exc.value.code == ERR.KEEPALIVE_CANCEL


def test_keepalive_upneeded_before_waiting(make_band) -> None:
    band = make_band(NYMI)
    seen: list[int] = []
    band.ctap2.make_credential(
        os.urandom(32),
        {"id": "example.com"},
        {"id": b"u"},
        ES256,
        options={"uv": True},
        on_keepalive=seen.append,
    )
    assert seen == [2]  # STATUS_UPNEEDED, reported once
