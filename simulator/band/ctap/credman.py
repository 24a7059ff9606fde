"""authenticatorCredentialManagement (0x0A, and the FIDO_2_1_PRE prototype 0x41), CTAP 2.1 §6.8.

Every subcommand except the two "get next" ones needs a pinUvAuthToken with the ``cm``
permission: its pinUvAuthParam authenticates ``subCommand || subCommandParams`` (§6.8.1-§6.8.6).
The prototype command serves the same subcommands except updateUserInformation, which the preview
did not define.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import codec
from .constants import PUBLIC_KEY, Permission, WireEnum
from .credentials import ResidentRecord
from .errors import ERR, CtapError

if TYPE_CHECKING:
    from .context import Core


class CredentialManagement:
    """Keys and subcommands of authenticatorCredentialManagement (§6.8)."""

    @enum.unique
    class CMD(WireEnum):
        GET_CREDS_METADATA = 0x01
        ENUMERATE_RPS_BEGIN = 0x02
        ENUMERATE_RPS_NEXT = 0x03
        ENUMERATE_CREDS_BEGIN = 0x04
        ENUMERATE_CREDS_NEXT = 0x05
        DELETE_CREDENTIAL = 0x06
        UPDATE_USER_INFO = 0x07

    @enum.unique
    class PARAM(WireEnum):
        SUB_COMMAND = 0x01
        SUB_COMMAND_PARAMS = 0x02
        PIN_UV_AUTH_PROTOCOL = 0x03
        PIN_UV_AUTH_PARAM = 0x04

    @enum.unique
    class SUB_PARAM(WireEnum):
        RP_ID_HASH = 0x01
        CREDENTIAL_ID = 0x02
        USER = 0x03

    @enum.unique
    class RESULT(WireEnum):
        EXISTING_CRED_COUNT = 0x01
        MAX_REMAINING_COUNT = 0x02
        RP = 0x03
        RP_ID_HASH = 0x04
        TOTAL_RPS = 0x05
        USER = 0x06
        CREDENTIAL_ID = 0x07
        PUBLIC_KEY = 0x08
        TOTAL_CREDENTIALS = 0x09
        CRED_PROTECT = 0x0A
        LARGE_BLOB_KEY = 0x0B


CMD = CredentialManagement.CMD
RESULT = CredentialManagement.RESULT
_AUTHENTICATED = {
    CMD.GET_CREDS_METADATA,
    CMD.ENUMERATE_RPS_BEGIN,
    CMD.ENUMERATE_CREDS_BEGIN,
    CMD.DELETE_CREDENTIAL,
    CMD.UPDATE_USER_INFO,
}


@dataclass
class Enumeration:
    """Remaining items of enumerateRPs or enumerateCredentials (§6.8.2, §6.8.3)."""

    kind: CredentialManagement.CMD
    items: list[Any]


def _rps(core: Core) -> list[tuple[dict[str, Any], bytes]]:
    seen: dict[bytes, dict[str, Any]] = {}
    for record in core.creds.resident_records():
        seen.setdefault(record.rp_id_hash, record.rp)
    return [(rp, digest) for digest, rp in seen.items()]


def _credential_entry(core: Core, record: ResidentRecord) -> dict[int, Any]:
    credential = core.creds.find(record.cred_id, record.rp_id_hash)
    if credential is None:  # pragma: no cover - a record always decrypts with the live secret
        raise CtapError(ERR.NO_CREDENTIALS)
    entry: dict[int, Any] = {
        RESULT.USER: record.user,
        RESULT.CREDENTIAL_ID: {"id": record.cred_id, "type": PUBLIC_KEY},
        RESULT.PUBLIC_KEY: codec.decode_item(credential.cose_key),
        RESULT.CRED_PROTECT: int(credential.cred_protect),
    }
    if record.large_blob_key is not None:
        entry[RESULT.LARGE_BLOB_KEY] = record.large_blob_key
    return entry


def _descriptor_id(sub_params: Mapping[Any, Any]) -> bytes:
    value = sub_params.get(int(CredentialManagement.SUB_PARAM.CREDENTIAL_ID))
    if value is None:
        raise CtapError(ERR.MISSING_PARAMETER)
    _kind, cred_id = codec.parse_descriptor(value)
    return cred_id


def credential_management(
    core: Core, params: Mapping[int, Any], *, preview: bool
) -> dict[int, Any]:
    """Serve one credential-management subcommand (§6.8)."""
    P = CredentialManagement.PARAM
    raw_sub = codec.need_uint(params, P.SUB_COMMAND)
    sub_params = codec.get_map(params, P.SUB_COMMAND_PARAMS)
    version = codec.get_uint(params, P.PIN_UV_AUTH_PROTOCOL)
    pin_param = codec.get_bytes(params, P.PIN_UV_AUTH_PARAM)
    if raw_sub not in CMD.__members__.values() or (preview and raw_sub == CMD.UPDATE_USER_INFO):
        core.pending = None
        raise CtapError(ERR.INVALID_SUBCOMMAND)
    sub = CMD(raw_sub)
    if sub in (CMD.ENUMERATE_RPS_NEXT, CMD.ENUMERATE_CREDS_NEXT):
        return _next(core, sub)
    core.pending = None
    if sub in (CMD.ENUMERATE_CREDS_BEGIN, CMD.DELETE_CREDENTIAL, CMD.UPDATE_USER_INFO):
        if sub_params is None:
            raise CtapError(ERR.MISSING_PARAMETER)
    pin = core.pin
    if sub in _AUTHENTICATED:
        if pin_param is None:
            raise CtapError(ERR.PUAT_REQUIRED)
        pin.protocol(version)
        assert version is not None
        message = bytes((sub,)) + (codec.encode(sub_params) if sub_params is not None else b"")
        pin.verify(version, message, pin_param)
        pin.require(Permission.CM)
    if sub == CMD.GET_CREDS_METADATA:
        if pin.token.rp_id is not None:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        count = core.creds.resident_count()
        return {
            RESULT.EXISTING_CRED_COUNT: count,
            RESULT.MAX_REMAINING_COUNT: max(core.creds.slots - count, 0),
        }
    if sub == CMD.ENUMERATE_RPS_BEGIN:
        if pin.token.rp_id is not None:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        rps = _rps(core)
        if not rps:
            raise CtapError(ERR.NO_CREDENTIALS)
        rp, digest = rps[0]
        core.pending = Enumeration(CMD.ENUMERATE_RPS_BEGIN, rps[1:])
        return {RESULT.RP: rp, RESULT.RP_ID_HASH: digest, RESULT.TOTAL_RPS: len(rps)}
    assert sub_params is not None
    if sub == CMD.ENUMERATE_CREDS_BEGIN:
        rp_id_hash = codec.need_bytes(sub_params, int(CredentialManagement.SUB_PARAM.RP_ID_HASH))
        token_rp = pin.token.rp_id
        if token_rp is not None and core.rp_id_hash(token_rp) != rp_id_hash:
            raise CtapError(ERR.PIN_AUTH_INVALID)
        records = [r for r in core.creds.resident_records() if r.rp_id_hash == rp_id_hash]
        if not records:
            raise CtapError(ERR.NO_CREDENTIALS)
        core.pending = Enumeration(CMD.ENUMERATE_CREDS_BEGIN, records[1:])
        entry = _credential_entry(core, records[0])
        entry[RESULT.TOTAL_CREDENTIALS] = len(records)
        return entry
    cred_id = _descriptor_id(sub_params)
    record = core.creds.record_for(cred_id)
    if record is None:
        raise CtapError(ERR.NO_CREDENTIALS)
    if pin.token.rp_id is not None and pin.token.rp_id != record.rp_id:
        raise CtapError(ERR.PIN_AUTH_INVALID)
    if sub == CMD.DELETE_CREDENTIAL:
        core.creds.delete(record)
        return {}
    user = codec.need_map(sub_params, int(CredentialManagement.SUB_PARAM.USER))
    user_id = user.get("id")
    if user_id is None:
        raise CtapError(ERR.MISSING_PARAMETER)
    if type(user_id) is not bytes:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    if user_id != record.user_id:
        raise CtapError(ERR.INVALID_PARAMETER)
    updated: dict[str, Any] = {"id": user_id}
    for member in ("name", "displayName"):
        text = codec.get_str(user, member)
        if text:
            updated[member] = text
    core.creds.update_user(record, updated)
    return {}


def _next(core: Core, sub: CredentialManagement.CMD) -> dict[int, Any]:
    """enumerateRPsGetNextRP / enumerateCredentialsGetNextCredential (§6.8.2, §6.8.3)."""
    state = core.pending
    begin = CMD.ENUMERATE_RPS_BEGIN if sub == CMD.ENUMERATE_RPS_NEXT else CMD.ENUMERATE_CREDS_BEGIN
    if not isinstance(state, Enumeration) or state.kind != begin or not state.items:
        core.pending = None
        raise CtapError(ERR.NOT_ALLOWED)
    item = state.items.pop(0)
    if sub == CMD.ENUMERATE_RPS_NEXT:
        rp, digest = item
        return {RESULT.RP: rp, RESULT.RP_ID_HASH: digest}
    return _credential_entry(core, item)
