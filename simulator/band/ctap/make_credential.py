"""authenticatorMakeCredential (0x01), following the algorithm of CTAP 2.1 §6.1.2."""

from __future__ import annotations

import enum
import struct
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from . import codec
from .constants import PUBLIC_KEY, AuthDataFlag, CoseAlg, CredProtect, Permission, WireEnum
from .errors import ERR, CtapError
from .extensions import registration

if TYPE_CHECKING:
    from .context import Core

_UP_AT = int(AuthDataFlag.UP | AuthDataFlag.AT)
_UV = int(AuthDataFlag.UV)
_ED = int(AuthDataFlag.ED)


class MakeCredential:
    """Parameter and response keys of authenticatorMakeCredential (§6.1)."""

    @enum.unique
    class PARAM(WireEnum):
        CLIENT_DATA_HASH = 0x01
        RP = 0x02
        USER = 0x03
        PUB_KEY_CRED_PARAMS = 0x04
        EXCLUDE_LIST = 0x05
        EXTENSIONS = 0x06
        OPTIONS = 0x07
        PIN_UV_AUTH_PARAM = 0x08
        PIN_UV_AUTH_PROTOCOL = 0x09
        ENTERPRISE_ATTESTATION = 0x0A

    @enum.unique
    class RESULT(WireEnum):
        FMT = 0x01
        AUTH_DATA = 0x02
        ATT_STMT = 0x03
        EP_ATT = 0x04
        LARGE_BLOB_KEY = 0x05


def _entity(value: dict[Any, Any], id_type: type, members: tuple[str, ...]) -> dict[str, Any]:
    """An RP or user entity: ``id`` required, the listed text members optional (§6.1 0x02/0x03)."""
    ident = value.get("id")
    if ident is None:
        raise CtapError(ERR.MISSING_PARAMETER)
    if type(ident) is not id_type:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    entity: dict[str, Any] = {"id": ident}
    for member in members:
        text = codec.get_str(value, member)
        if text is not None:
            entity[member] = text
    return entity


def _choose_algorithm(core: Core, params: list[Any]) -> CoseAlg:
    """§6.1.2 step 3: the first supported entry of pubKeyCredParams."""
    chosen: CoseAlg | None = None
    for item in params:
        if type(item) is not dict:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        kind, alg = item.get("type"), item.get("alg")
        if kind is None or alg is None:
            raise CtapError(ERR.INVALID_CBOR)
        if type(kind) is not str or type(alg) is not int:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        if chosen is None and kind == PUBLIC_KEY and alg in core.features.algorithms:
            chosen = CoseAlg(alg)
    if chosen is None:
        raise CtapError(ERR.UNSUPPORTED_ALGORITHM)
    return chosen


def _refuse(puat: bool) -> None:
    """UV is required but missing: PUAT_REQUIRED when clientPin could supply a token (§6.1.2)."""
    raise CtapError(ERR.PUAT_REQUIRED if puat else ERR.OPERATION_DENIED)


def make_credential(core: Core, params: Mapping[int, Any]) -> bytes:
    """Create a credential; return the status byte and the encoded response map (§6.1.2)."""
    P = MakeCredential.PARAM
    cdh = codec.need_bytes(params, P.CLIENT_DATA_HASH)
    rp = _entity(codec.need_map(params, P.RP), str, ("name",))
    user = _entity(codec.need_map(params, P.USER), bytes, ("name", "displayName"))
    cred_params = codec.get_list(params, P.PUB_KEY_CRED_PARAMS)
    if cred_params is None:
        raise CtapError(ERR.MISSING_PARAMETER)
    exclude = codec.parse_descriptor_list(params, P.EXCLUDE_LIST) or []
    ext_inputs = codec.get_extensions(params, P.EXTENSIONS)
    options = codec.get_options(params, P.OPTIONS)
    pin_param = codec.get_bytes(params, P.PIN_UV_AUTH_PARAM)
    pin_version = codec.get_uint(params, P.PIN_UV_AUTH_PROTOCOL)
    enterprise = codec.get_uint(params, P.ENTERPRISE_ATTESTATION)
    rp_id: str = rp["id"]
    features = core.features
    pin = core.pin
    user_io = core.user

    # Step 1: a zero-length pinUvAuthParam asks the user to pick this authenticator.
    if pin_param is not None and len(pin_param) == 0 and features.client_pin_command:
        user_io.require_presence()
        raise CtapError(ERR.PIN_INVALID if pin.pin_set else ERR.PIN_NOT_SET)
    # Step 2.
    if pin_param is not None:
        pin.protocol(pin_version)
    # Step 3.
    alg = _choose_algorithm(core, cred_params)
    # Step 5: options.
    uv = options.get("uv", False) and pin_param is None
    uv_configured = user_io.uv_configured()
    if uv and not uv_configured:
        raise CtapError(ERR.INVALID_OPTION)
    if "rk" in options and not features.rk:
        raise CtapError(ERR.UNSUPPORTED_OPTION)
    rk = options.get("rk", False)
    if options.get("up") is False:
        raise CtapError(ERR.INVALID_OPTION)
    protected = core.protected()
    uv_not_required = features.make_cred_uv_not_rqd
    # Step 6: alwaysUv.
    if core.always_uv():
        uv_not_required = False
        if not protected:
            _refuse(features.client_pin)
        if pin_param is None and not uv:
            if uv_configured:
                uv = True
            else:
                _refuse(features.client_pin)
    # Steps 7 and 8: when UV is required for this credential ("clientPin" true: a PIN is set).
    if protected and not uv and pin_param is None and (rk or not uv_not_required):
        _refuse(pin.pin_set)
    # Step 9: no enterprise attestation on these models.
    if enterprise is not None:
        raise CtapError(ERR.INVALID_PARAMETER)
    extensions = registration(core, ext_inputs, rp_id, rk)
    rp_id_hash = core.rp_id_hash(rp_id)
    # Steps 10 and 11: user verification.
    uv_flag = False
    up_evidence = False
    skip_uv = not rk and not uv and uv_not_required and pin_param is None
    if protected and not skip_uv:
        if pin_param is not None:
            assert pin_version is not None
            pin.verify(pin_version, cdh, pin_param)
            pin.require(Permission.MC)
            if not pin.user_verified_flag():
                raise CtapError(ERR.PIN_AUTH_INVALID)
            pin.bind_rp(rp_id)
            uv_flag = True
        elif uv:
            up_evidence = user_io.uv_for_operation()
            uv_flag = True
    # Step 12: excludeList.
    for kind, cred_id in exclude:
        if kind != PUBLIC_KEY:
            continue
        excluded = core.creds.find(cred_id, rp_id_hash)
        if excluded is None:
            continue
        if excluded.cred_protect != CredProtect.UV_REQUIRED or uv_flag:
            if not up_evidence and not (pin_param is not None and pin.user_present_flag()):
                user_io.require_presence()
            raise CtapError(ERR.CREDENTIAL_EXCLUDED)
    # Steps 13 and 14: user presence.
    if not up_evidence and not (pin_param is not None and pin.user_present_flag()):
        user_io.require_presence()
    if pin.token.in_use:
        pin.consume()
    # Steps 15 to 18: extensions, key pair, storage.
    puts: dict[str, bytes] = {}
    credential = core.creds.generate(rp_id_hash, alg, extensions.cred_protect, rk, puts)
    core.creds.commit_new(
        credential,
        puts,
        rp=rp if rk else None,
        user=user if rk else None,
        cred_blob=extensions.cred_blob,
        large_blob_key=extensions.large_blob_key,
    )
    # Step 19: authenticator data and attestation.
    flags = _UP_AT | _UV if uv_flag else _UP_AT
    ext_out = extensions.encoded_outputs()
    if ext_out:
        flags |= _ED
    cred_id = credential.cred_id
    auth_data = b"".join(
        (
            rp_id_hash,
            bytes((flags,)),
            b"\x00\x00\x00\x00",
            core.aaguid,
            struct.pack(">H", len(cred_id)),
            cred_id,
            credential.cose_key,
            ext_out,
        )
    )
    signed = auth_data + cdh
    attestation = core.attestation
    if attestation.basic:
        att_stmt = attestation.packed_basic_cbor(signed)
    else:
        att_stmt = codec.encode(
            attestation.packed_statement(signed, (credential.alg, credential.sign(signed)))
        )
    # {1: "packed", 2: authData, 3: attStmt [, 5: largeBlobKey]} in canonical order.
    parts = [
        b"\x00\xa4" if extensions.large_blob_key is not None else b"\x00\xa3",
        b"\x01\x66packed\x02",
        codec.bstr_header(len(auth_data)),
        auth_data,
        b"\x03",
        att_stmt,
    ]
    if extensions.large_blob_key is not None:
        parts += [b"\x05\x58\x20", extensions.large_blob_key]
    return b"".join(parts)
