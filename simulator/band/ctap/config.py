"""authenticatorConfig (0x0D), CTAP 2.1 §6.11: toggleAlwaysUv (§7.2) and setMinPINLength (§7.4).

Enterprise attestation is not a feature of these models (getInfo has no ``ep`` option), so
enableEnterpriseAttestation (§7.1) is not implemented and answers CTAP2_ERR_INVALID_SUBCOMMAND,
like any subcommand the authenticator does not support.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import codec
from .constants import MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH, Permission, WireEnum
from .errors import ERR, CtapError

if TYPE_CHECKING:
    from .context import Core


class AuthenticatorConfig:
    """Keys and subcommands of authenticatorConfig (§6.11)."""

    @enum.unique
    class CMD(WireEnum):
        ENABLE_ENTERPRISE_ATTESTATION = 0x01
        TOGGLE_ALWAYS_UV = 0x02
        SET_MIN_PIN_LENGTH = 0x03
        VENDOR_PROTOTYPE = 0xFF

    @enum.unique
    class PARAM(WireEnum):
        SUB_COMMAND = 0x01
        SUB_COMMAND_PARAMS = 0x02
        PIN_UV_AUTH_PROTOCOL = 0x03
        PIN_UV_AUTH_PARAM = 0x04

    @enum.unique
    class SUB_PARAM(WireEnum):
        NEW_MIN_PIN_LENGTH = 0x01
        MIN_PIN_LENGTH_RPIDS = 0x02
        FORCE_CHANGE_PIN = 0x03


CMD = AuthenticatorConfig.CMD


def _supported(core: Core, sub: int) -> bool:
    if sub == CMD.TOGGLE_ALWAYS_UV:
        return core.features.always_uv
    if sub == CMD.SET_MIN_PIN_LENGTH:
        return core.features.set_min_pin_length
    return False


def authenticator_config(core: Core, params: Mapping[int, Any]) -> dict[int, Any]:
    """Serve one authenticatorConfig request (§6.11)."""
    P = AuthenticatorConfig.PARAM
    sub = codec.need_uint(params, P.SUB_COMMAND)
    sub_params = codec.get_map(params, P.SUB_COMMAND_PARAMS)
    version = codec.get_uint(params, P.PIN_UV_AUTH_PROTOCOL)
    pin_param = codec.get_bytes(params, P.PIN_UV_AUTH_PARAM)
    if not _supported(core, sub):
        raise CtapError(ERR.INVALID_SUBCOMMAND)
    if core.protected() or core.always_uv():
        if pin_param is None:
            raise CtapError(ERR.PUAT_REQUIRED)
        core.pin.protocol(version)
        assert version is not None
        message = b"\xff" * 32 + b"\x0d" + bytes((sub,))
        if sub_params is not None:
            message += codec.encode(sub_params)
        core.pin.verify(version, message, pin_param)
        core.pin.require(Permission.ACFG)
    settings = core.settings
    if sub == CMD.TOGGLE_ALWAYS_UV:
        settings.update(always_uv=not settings.state.always_uv)
        return {}
    # setMinPINLength (§7.4)
    S = AuthenticatorConfig.SUB_PARAM
    sub_params = sub_params or {}
    new_min = codec.get_uint(sub_params, int(S.NEW_MIN_PIN_LENGTH))
    rp_ids = codec.get_list(sub_params, int(S.MIN_PIN_LENGTH_RPIDS))
    force = codec.get_bool(sub_params, int(S.FORCE_CHANGE_PIN)) or False
    state = settings.state
    if new_min is None:
        new_min = state.min_pin_length
    if new_min < state.min_pin_length:
        raise CtapError(ERR.PIN_POLICY_VIOLATION)
    if new_min > 63:
        raise CtapError(ERR.INVALID_PARAMETER)
    if rp_ids is not None:
        if any(type(rp) is not str for rp in rp_ids):
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        if len(rp_ids) > MAX_RPIDS_FOR_SET_MIN_PIN_LENGTH:
            raise CtapError(ERR.PIN_POLICY_VIOLATION)
    if force and not core.pin.pin_set:
        raise CtapError(ERR.PIN_NOT_SET)
    force_change = state.force_pin_change or force
    if core.pin.pin_set and core.pin.pin_length < new_min:
        force_change = True
    settings.update(
        min_pin_length=new_min,
        min_pin_rp_ids=tuple(rp_ids) if rp_ids is not None else state.min_pin_rp_ids,
        force_pin_change=force_change,
    )
    return {}
