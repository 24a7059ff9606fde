"""Fingerprint enrollment (CTAP 2.1 §6.7) and built-in UV with its retry counter."""

from __future__ import annotations

import os
import threading

import cbor2
import pytest
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin, FPBioEnrollment
from fido2.ctap2.bio import CaptureError
from fido2.ctap2.pin import PinProtocolV2

from simulator.band.ctap import SampleResult, SampleStatus, UvResult

from .conftest import REFERENCE

ERR = CtapError.ERR
PERM = ClientPin.PERMISSION
ES256 = [{"type": "public-key", "alg": -7}]


def _bio(band) -> tuple[ClientPin, FPBioEnrollment]:  # type: ignore[no-untyped-def]
    pin = ClientPin(band.ctap2, PinProtocolV2())
    pin.set_pin("1234")
    token = pin.get_pin_token("1234", PERM.BIO_ENROLL)
    return pin, FPBioEnrollment(band.ctap2, pin.protocol, token)


def _enroll(bio: FPBioEnrollment) -> bytes:
    ctx = bio.enroll()
    while True:
        try:
            template = ctx.capture()
        except CaptureError:
            continue
        if template is not None:
            return template


def test_enroll_with_rejected_samples_then_uv(make_band, scripted) -> None:
    samples = [
        SampleResult.good(),
        SampleResult.rejected(SampleStatus.TOO_HIGH),
        SampleResult.rejected(SampleStatus.POOR_QUALITY),
    ]
    band = make_band(REFERENCE, scripted(samples=samples))
    pin, bio = _bio(band)
    info = bio.get_fingerprint_sensor_info()
    assert info[FPBioEnrollment.RESULT.MAX_SAMPLES_REQUIRED] == 8
    template_id, status, remaining = bio.enroll_begin()
    assert (status, remaining) == (FPBioEnrollment.FEEDBACK.FP_GOOD, 7)
    status, remaining = bio.enroll_capture_next(template_id)
    assert (status, remaining) == (FPBioEnrollment.FEEDBACK.FP_TOO_HIGH, 7)
    status, remaining = bio.enroll_capture_next(template_id)
    assert (status, remaining) == (FPBioEnrollment.FEEDBACK.FP_POOR_QUALITY, 7)
    for left in range(6, -1, -1):
        assert bio.enroll_capture_next(template_id) == (FPBioEnrollment.FEEDBACK.FP_GOOD, left)
    options = band.ctap2.get_info().options
    assert options["uv"] is True and options["bioEnroll"] is True
    assert bio.enumerate_enrollments() == {template_id: ""}
    bio.set_name(template_id, "right index")
    assert bio.enumerate_enrollments() == {template_id: "right index"}
    # Built-in UV now works: a UV token, and the CTAP2.0 "uv" option.
    token = pin.get_uv_token(PERM.MAKE_CREDENTIAL, "example.com")
    cdh = os.urandom(32)
    made = band.ctap2.make_credential(
        cdh,
        {"id": "example.com"},
        {"id": b"u"},
        ES256,
        pin_uv_param=pin.protocol.authenticate(token, cdh),
        pin_uv_protocol=2,
    )
    assert made.auth_data.is_user_verified()
    made = band.ctap2.make_credential(
        os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256, options={"uv": True}
    )
    assert made.auth_data.is_user_verified() and made.auth_data.is_user_present()
    # Getting the UV token ended the earlier "be" token (§6.5.5.7.3 step 12): take a new one.
    with pytest.raises(CtapError) as exc:
        bio.remove_enrollment(template_id)
    assert exc.value.code == ERR.PIN_AUTH_INVALID
    bio = FPBioEnrollment(band.ctap2, pin.protocol, pin.get_pin_token("1234", PERM.BIO_ENROLL))
    bio.remove_enrollment(template_id)
    assert bio.enumerate_enrollments() == {}
    assert band.ctap2.get_info().options["uv"] is False


def test_uv_retries_and_uv_blocked(make_band, scripted) -> None:
    band = make_band(REFERENCE, scripted(uv=[UvResult.NO_MATCH] * 5))
    pin, bio = _bio(band)
    _enroll(bio)
    assert pin.get_uv_retries() == 5
    for left in (4, 3, 2, 1):
        with pytest.raises(CtapError) as exc:
            pin.get_uv_token(PERM.GET_ASSERTION)
        assert exc.value.code == ERR.UV_INVALID
        assert pin.get_uv_retries() == left
    with pytest.raises(CtapError) as exc:
        pin.get_uv_token(PERM.GET_ASSERTION)
    assert exc.value.code == ERR.UV_BLOCKED  # the fifth no-match used the last retry
    with pytest.raises(CtapError) as exc:
        pin.get_uv_token(PERM.GET_ASSERTION)
    assert exc.value.code == ERR.UV_BLOCKED  # blocked before any attempt
    # The "uv" option path names PIN_BLOCKED for an exhausted counter (§6.1.2 step 11.2.3);
    # with a PIN set the platform is told to use a token instead.
    with pytest.raises(CtapError) as exc:
        band.ctap2.make_credential(
            os.urandom(32), {"id": "example.com"}, {"id": b"u"}, ES256, options={"uv": True}
        )
    assert exc.value.code == ERR.PUAT_REQUIRED
    # A correct PIN restores the UV retries.
    pin.get_pin_token("1234", PERM.GET_ASSERTION)
    assert pin.get_uv_retries() == 5


def test_capture_timeout_cancel_and_enroll_cancel(make_band, scripted) -> None:
    band = make_band(REFERENCE, scripted(samples=[SampleResult.timeout(), SampleResult.good()]))
    _pin, bio = _bio(band)
    with pytest.raises(CtapError) as exc:
        bio.enroll_begin(timeout=1000)
    assert exc.value.code == ERR.USER_ACTION_TIMEOUT
    template_id, _status, remaining = bio.enroll_begin()
    assert remaining == 7
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(CtapError) as exc:
        bio.enroll_capture_next(template_id, event=cancel)
    assert exc.value.code == ERR.KEEPALIVE_CANCEL
    bio.enroll_cancel()
    with pytest.raises(CtapError) as exc:
        bio.enroll_capture_next(template_id)
    assert exc.value.code == ERR.INVALID_PARAMETER
    with pytest.raises(CtapError) as exc:
        bio.remove_enrollment(b"\x00\x01")
    assert exc.value.code == ERR.INVALID_OPTION


def test_bio_prototype_command_and_modality(make_band) -> None:
    band = make_band(REFERENCE)
    raw = band.cbor(b"\x40" + cbor2.dumps({6: True}))
    assert raw[0] == 0 and cbor2.loads(raw[1:]) == {1: 1}
    raw = band.cbor(b"\x40" + cbor2.dumps({1: 1, 2: 7}))
    assert raw[0] == 0 and cbor2.loads(raw[1:])[2] == 1  # touch sensor
    assert band.cbor(b"\x09" + cbor2.dumps({1: 1, 2: 1})) == bytes((ERR.PUAT_REQUIRED,))
    assert band.cbor(b"\x09" + cbor2.dumps({1: 1, 2: 0x20})) == bytes((ERR.INVALID_SUBCOMMAND,))
