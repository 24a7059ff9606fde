"""authenticatorBioEnrollment (0x09, and the FIDO_2_1_PRE prototype 0x40), fingerprint modality,
CTAP 2.1 §6.7.

Samples come from the wearer (:meth:`Wearer.capture_enrollment_sample
<simulator.band.ctap.wearer.Wearer.capture_enrollment_sample>`); a good sample lowers
``remainingSamples``, a rejected one reports its ``lastEnrollSampleStatus`` and changes nothing.
The fixture's ``limits.enrollment_touches`` is the number of good samples a template needs.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import codec
from .constants import MAX_TEMPLATE_FRIENDLY_NAME, Permission, WireEnum
from .errors import ERR, CtapError
from .wearer import CaptureOutcome, SampleStatus

if TYPE_CHECKING:
    from .context import Core

#: Fingerprint templates one band holds.
MAX_TEMPLATES = 5


class BioEnrollment:
    """Keys and subcommands of authenticatorBioEnrollment (§6.7)."""

    @enum.unique
    class CMD(WireEnum):
        ENROLL_BEGIN = 0x01
        ENROLL_CAPTURE_NEXT = 0x02
        ENROLL_CANCEL = 0x03
        ENUMERATE_ENROLLMENTS = 0x04
        SET_NAME = 0x05
        REMOVE_ENROLLMENT = 0x06
        GET_SENSOR_INFO = 0x07

    @enum.unique
    class PARAM(WireEnum):
        MODALITY = 0x01
        SUB_COMMAND = 0x02
        SUB_COMMAND_PARAMS = 0x03
        PIN_UV_AUTH_PROTOCOL = 0x04
        PIN_UV_AUTH_PARAM = 0x05
        GET_MODALITY = 0x06

    @enum.unique
    class SUB_PARAM(WireEnum):
        TEMPLATE_ID = 0x01
        TEMPLATE_NAME = 0x02
        TIMEOUT_MS = 0x03

    @enum.unique
    class RESULT(WireEnum):
        MODALITY = 0x01
        FINGERPRINT_KIND = 0x02
        MAX_SAMPLES_REQUIRED = 0x03
        TEMPLATE_ID = 0x04
        LAST_SAMPLE_STATUS = 0x05
        REMAINING_SAMPLES = 0x06
        TEMPLATE_INFOS = 0x07
        MAX_TEMPLATE_FRIENDLY_NAME = 0x08

    MODALITY_FINGERPRINT = 0x01
    FINGERPRINT_KIND_TOUCH = 0x01


CMD = BioEnrollment.CMD
RESULT = BioEnrollment.RESULT
SUB = BioEnrollment.SUB_PARAM


@dataclass
class Enrollment:
    """A fingerprint enrollment in progress."""

    template_id: bytes
    remaining: int


def _capture(core: Core, state: Enrollment, timeout_ms: int | None) -> dict[int, Any]:
    """Capture one sample for ``state`` and report it (§6.7.4 / §6.7.5)."""
    user_io = core.user
    timeout_s = timeout_ms / 1000 if timeout_ms else user_io.timeout_s
    user_io.up_needed()
    sample = core.wearer.capture_enrollment_sample(timeout_s, user_io.cancel)
    if sample.outcome is CaptureOutcome.CANCELLED:
        raise CtapError(ERR.KEEPALIVE_CANCEL)
    if sample.outcome is CaptureOutcome.TIMEOUT:
        raise CtapError(ERR.USER_ACTION_TIMEOUT)
    if sample.status is SampleStatus.GOOD:
        state.remaining -= 1
    if state.remaining == 0:
        items = dict(core.templates.items)
        items[state.template_id] = ""
        core.templates.save(items)
        core.enrollment = None
    return {
        RESULT.LAST_SAMPLE_STATUS: int(sample.status),
        RESULT.REMAINING_SAMPLES: state.remaining,
    }


def bio_enrollment(core: Core, params: Mapping[int, Any]) -> dict[int, Any]:
    """Serve one bio-enrollment request (§6.7)."""
    P = BioEnrollment.PARAM
    modality = codec.get_uint(params, P.MODALITY)
    raw_sub = codec.get_uint(params, P.SUB_COMMAND)
    sub_params = codec.get_map(params, P.SUB_COMMAND_PARAMS)
    version = codec.get_uint(params, P.PIN_UV_AUTH_PROTOCOL)
    pin_param = codec.get_bytes(params, P.PIN_UV_AUTH_PARAM)
    if codec.get_bool(params, P.GET_MODALITY):
        return {RESULT.MODALITY: BioEnrollment.MODALITY_FINGERPRINT}
    if modality is None or raw_sub is None:
        raise CtapError(ERR.MISSING_PARAMETER)
    if modality != BioEnrollment.MODALITY_FINGERPRINT:
        raise CtapError(ERR.INVALID_OPTION)
    if raw_sub not in CMD.__members__.values():
        raise CtapError(ERR.INVALID_SUBCOMMAND)
    sub = CMD(raw_sub)
    if sub == CMD.GET_SENSOR_INFO:
        return {
            RESULT.FINGERPRINT_KIND: BioEnrollment.FINGERPRINT_KIND_TOUCH,
            RESULT.MAX_SAMPLES_REQUIRED: core.fixture.limits.enrollment_touches,
            RESULT.MAX_TEMPLATE_FRIENDLY_NAME: MAX_TEMPLATE_FRIENDLY_NAME,
        }
    if sub == CMD.ENROLL_CANCEL:
        core.enrollment = None
        return {}
    if pin_param is None:
        raise CtapError(ERR.PUAT_REQUIRED)
    pin = core.pin
    pin.protocol(version)
    assert version is not None
    message = bytes((modality, sub)) + (codec.encode(sub_params) if sub_params is not None else b"")
    pin.verify(version, message, pin_param)
    pin.require(Permission.BE)
    sub_params = sub_params or {}
    timeout_ms = codec.get_uint(sub_params, int(SUB.TIMEOUT_MS))
    templates = core.templates.items
    if sub == CMD.ENROLL_BEGIN:
        if len(templates) >= MAX_TEMPLATES:
            raise CtapError(ERR.FP_DATABASE_FULL)
        template_id = core.rng(2)
        while template_id in templates:
            template_id = core.rng(2)
        state = Enrollment(template_id, core.fixture.limits.enrollment_touches)
        core.enrollment = state
        reply = _capture(core, state, timeout_ms)
        reply[RESULT.TEMPLATE_ID] = template_id
        return reply
    if sub == CMD.ENROLL_CAPTURE_NEXT:
        template_id = codec.need_bytes(sub_params, int(SUB.TEMPLATE_ID))
        state_now = core.enrollment
        if not isinstance(state_now, Enrollment) or state_now.template_id != template_id:
            raise CtapError(ERR.INVALID_PARAMETER)
        return _capture(core, state_now, timeout_ms)
    if sub == CMD.ENUMERATE_ENROLLMENTS:
        if not templates:
            raise CtapError(ERR.INVALID_OPTION)
        infos = [{0x01: tid, 0x02: name} for tid, name in templates.items()]
        return {RESULT.TEMPLATE_INFOS: infos}
    template_id = codec.need_bytes(sub_params, int(SUB.TEMPLATE_ID))
    if template_id not in templates:
        raise CtapError(ERR.INVALID_OPTION)
    items = dict(templates)
    if sub == CMD.SET_NAME:
        name = codec.need_str(sub_params, int(SUB.TEMPLATE_NAME))
        if len(name.encode()) > MAX_TEMPLATE_FRIENDLY_NAME:
            raise CtapError(ERR.INVALID_LENGTH)
        items[template_id] = name
    else:  # REMOVE_ENROLLMENT
        del items[template_id]
    core.templates.save(items)
    return {}
