"""authenticatorGetAssertion (0x02) and authenticatorGetNextAssertion (0x08), CTAP 2.1 §6.2-§6.3.

This is the hot path: responses are assembled directly in canonical CBOR (every key of the
response map is a one-byte unsigned integer in increasing order), credential descriptors are
pre-encoded per credential, and loaded private keys are cached by the credential store.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from . import codec
from .constants import PUBLIC_KEY, AuthDataFlag, CredProtect, Permission, WireEnum
from .errors import ERR, CtapError
from .extensions import AssertionExtensions

if TYPE_CHECKING:
    from .context import Core
    from .credentials import Credential

#: Seconds after which remembered getAssertion state expires (§6.3 step 3).
NEXT_ASSERTION_TIMEOUT_S = 30.0

_UP = int(AuthDataFlag.UP)
_UV = int(AuthDataFlag.UV)
_ED = int(AuthDataFlag.ED)
_UV_REQUIRED = CredProtect.UV_REQUIRED
_UV_WITH_LIST = CredProtect.UV_OPTIONAL_WITH_CREDENTIAL_ID_LIST
_NO_EXTENSIONS = AssertionExtensions()
_GA = Permission.GA
_NO_OPTIONS: dict[str, bool] = {}
_FLAGS = [bytes((value,)) for value in range(256)]
_BSTR = codec.BSTR_HEADERS
_ECDSA_SHA256 = ec.ECDSA(hashes.SHA256())


class GetAssertion:
    """Parameter and response keys of authenticatorGetAssertion (§6.2)."""

    @enum.unique
    class PARAM(WireEnum):
        RP_ID = 0x01
        CLIENT_DATA_HASH = 0x02
        ALLOW_LIST = 0x03
        EXTENSIONS = 0x04
        OPTIONS = 0x05
        PIN_UV_AUTH_PARAM = 0x06
        PIN_UV_AUTH_PROTOCOL = 0x07

    @enum.unique
    class RESULT(WireEnum):
        CREDENTIAL = 0x01
        AUTH_DATA = 0x02
        SIGNATURE = 0x03
        USER = 0x04
        NUMBER_OF_CREDENTIALS = 0x05
        USER_SELECTED = 0x06
        LARGE_BLOB_KEY = 0x07


@dataclass
class AssertionState:
    """What getNextAssertion needs from the getAssertion that started it (§6.2.2 step 12.b.2)."""

    remaining: list[Credential]
    rp_id_hash: bytes
    client_data_hash: bytes
    flags: int
    uv: bool
    extensions: AssertionExtensions
    deadline: float


def _refuse(puat: bool) -> None:
    raise CtapError(ERR.PUAT_REQUIRED if puat else ERR.OPERATION_DENIED)


def _param(params: Mapping[int, Any], key: int, kind: type, required: bool = False) -> Any:
    value = params.get(key)
    if value is None:
        if key in params:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        if required:
            raise CtapError(ERR.MISSING_PARAMETER)
        return None
    if type(value) is not kind:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def get_assertion(core: Core, params: Mapping[int, Any]) -> bytes:
    """Sign with the applicable credential; return status byte and response map (§6.2.2)."""
    # Parameters (§6.2.1), with the type checks inlined for the common shapes.
    rp_id = params.get(1)
    if type(rp_id) is not str:
        rp_id = _param(params, 1, str, True)
    cdh = params.get(2)
    if type(cdh) is not bytes:
        cdh = _param(params, 2, bytes, True)
    allow = params.get(3)
    if allow is not None or 3 in params:
        if type(allow) is not list:
            allow = _param(params, 3, list)
        for descriptor in allow:
            if (
                type(descriptor) is not dict
                or type(descriptor.get("id")) is not bytes
                or type(descriptor.get("type")) is not str
            ):
                codec.parse_descriptor(descriptor)  # raises the precise status
    ext_inputs = codec.get_extensions(params, 4) if 4 in params else None
    options = params.get(5, _NO_OPTIONS)
    if type(options) is not dict:
        _param(params, 5, dict)
    for name, flag in options.items():
        if type(name) is not str or type(flag) is not bool:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    pin_param: bytes | None = _param(params, 6, bytes) if 6 in params else None
    pin_version = codec.get_uint(params, 7) if 7 in params else None
    features = core.features
    pin = core.pin
    user_io = core.user

    if pin_param is not None:
        # Step 1: a zero-length pinUvAuthParam asks the user to pick this authenticator.
        if not pin_param and features.client_pin_command:
            user_io.require_presence()
            raise CtapError(ERR.PIN_INVALID if pin.pin_set else ERR.PIN_NOT_SET)
        # Step 2.
        pin.protocol(pin_version)
    # Step 4: options.
    uv = pin_param is None and options.get("uv", False)
    if uv and not (features.wrist_uv or user_io.uv_configured()):
        raise CtapError(ERR.INVALID_OPTION)
    if "rk" in options:
        raise CtapError(ERR.UNSUPPORTED_OPTION)
    up = options.get("up", True)
    extensions = AssertionExtensions.parse(core, ext_inputs) if ext_inputs else _NO_EXTENSIONS
    # Step 5: alwaysUv.
    if up and features.always_uv and core.always_uv():
        if not core.protected():
            _refuse(features.client_pin)
        if pin_param is None and not uv:
            if user_io.uv_configured():
                uv = True
            else:
                _refuse(features.client_pin)
    # Step 6: user verification.
    uv_flag = False
    up_evidence = False
    if pin_param is not None:
        if core.protected():
            assert pin_version is not None
            pin.verify(pin_version, cdh, pin_param)
            if not pin.user_verified_flag():
                raise CtapError(ERR.PIN_AUTH_INVALID)
            pin.require(_GA)
            pin.bind_rp(rp_id)
            uv_flag = True
    elif uv:
        up_evidence = user_io.uv_for_operation()
        uv_flag = True
    # Step 7: applicable credentials, after credProtect (§12.1). A Nymi band that is not
    # authenticated on the wrist releases no key (its wrist UV above proved it is).
    if not uv_flag and features.wrist_presence:
        user_io.require_worn()
    # On a band whose UV is the wrist authentication, the wearer was verified by fingerprint
    # before any credential is touched (just above): a userVerificationRequired credential the
    # platform names in allowList is applicable (a platform's silent up=false check finds it);
    # the UV flag still follows the request's own "uv". Without allowList the strict rule stays:
    # the band does not list such credentials unless asked for UV.
    verified = uv_flag or features.wrist_uv
    rp_id_hash = core.rp_id_hashes.get(rp_id) or core.rp_id_hash(rp_id)
    store = core.creds
    selected: Credential | None = None
    found: list[Credential] = []
    if allow:
        cache = store.cache
        for descriptor in allow:
            if descriptor["type"] != PUBLIC_KEY:
                continue
            cred_id = descriptor["id"]
            credential = cache.get(cred_id)
            if credential is None or credential.rp_id_hash != rp_id_hash:
                credential = store.find(cred_id, rp_id_hash)
            if credential is not None and (verified or credential.cred_protect != _UV_REQUIRED):
                selected = credential  # §6.2.2 step 11: any applicable credential will do
                break
    else:
        found = [
            c
            for c in store.discoverable_for(rp_id_hash)
            if uv_flag or c.cred_protect not in (_UV_REQUIRED, _UV_WITH_LIST)
        ]
        if found:
            selected = found[0]
    if selected is None:
        raise CtapError(ERR.NO_CREDENTIALS)
    # Steps 8 and 9: user presence.
    flags = _UV if uv_flag else 0
    if up_evidence:
        flags |= _UP
    if up:
        if not up_evidence and not (pin_param is not None and pin.user_present_flag()):
            user_io.require_presence()
        flags |= _UP
        if pin.token.in_use:
            pin.consume()
    # Step 10: extensions.
    if ext_inputs:
        extensions.prepare(core, ext_inputs)
    # Steps 11 and 12: select, remember the rest for getNextAssertion.
    if len(found) < 2 and selected.record is None and not extensions.any_output:
        # The common case, inlined: {1: credential, 2: authData, 3: signature} (step 13).
        counter = selected.counter_value
        if counter is not None and counter < selected.ceiling:
            counter += 1
            selected.counter_value = counter
        else:
            counter = store.next_counter(selected)
        auth_data = rp_id_hash + _FLAGS[flags] + counter.to_bytes(4, "big")
        ecdsa_sign = selected.ecdsa_sign
        if ecdsa_sign is not None:
            signature = ecdsa_sign(auth_data + cdh, _ECDSA_SHA256)
        else:
            signature = selected.sign(auth_data + cdh)
        return b"".join(
            (
                b"\x00\xa3\x01",
                selected.descriptor_cbor,
                b"\x02\x58\x25",  # authData: 37 bytes without extensions
                auth_data,
                b"\x03",
                _BSTR[len(signature)],
                signature,
            )
        )
    number = None
    if len(found) > 1:
        number = len(found)
        core.pending = AssertionState(
            remaining=found[1:],
            rp_id_hash=rp_id_hash,
            client_data_hash=cdh,
            flags=flags,
            uv=uv_flag,
            extensions=extensions,
            deadline=core.clock() + NEXT_ASSERTION_TIMEOUT_S,
        )
    return _assertion(core, selected, rp_id_hash, cdh, flags, uv_flag, extensions, number)


def get_next_assertion(core: Core) -> bytes:
    """The next credential of the remembered getAssertion (§6.3)."""
    state = core.pending
    if not isinstance(state, AssertionState) or not state.remaining:
        raise CtapError(ERR.NOT_ALLOWED)
    if core.clock() > state.deadline:
        core.pending = None
        raise CtapError(ERR.NOT_ALLOWED)
    credential = state.remaining.pop(0)
    response = _assertion(
        core,
        credential,
        state.rp_id_hash,
        state.client_data_hash,
        state.flags,
        state.uv,
        state.extensions,
        0,
    )
    state.deadline = core.clock() + NEXT_ASSERTION_TIMEOUT_S
    return response


def _assertion(
    core: Core,
    credential: Credential,
    rp_id_hash: bytes,
    cdh: bytes,
    flags: int,
    uv: bool,
    extensions: AssertionExtensions,
    number: int | None,
) -> bytes:
    """Counter, authenticator data, signature; the status byte and response map (§6.2.2)."""
    counter = credential.counter_value
    if counter is not None and counter < credential.ceiling:
        counter += 1
        credential.counter_value = counter
    else:
        counter = core.creds.next_counter(credential)
    if extensions.any_output:
        ext_out = extensions.outputs(core, credential, uv)
        if ext_out:
            flags |= _ED
        auth_data = rp_id_hash + _FLAGS[flags] + counter.to_bytes(4, "big") + ext_out
    else:
        auth_data = rp_id_hash + _FLAGS[flags] + counter.to_bytes(4, "big")
    ecdsa_sign = credential.ecdsa_sign
    if ecdsa_sign is not None:
        signature = ecdsa_sign(auth_data + cdh, _ECDSA_SHA256)
    else:
        signature = credential.sign(auth_data + cdh)
    record = credential.record
    if record is None and not number:
        # The common case: {1: credential, 2: authData, 3: signature}.
        return b"".join(
            (
                b"\x00\xa3\x01",
                credential.descriptor_cbor,
                b"\x02",
                _BSTR[len(auth_data)],
                auth_data,
                b"\x03",
                _BSTR[len(signature)],
                signature,
            )
        )
    parts = [
        b"",
        b"\x01",
        credential.descriptor_cbor,
        b"\x02",
        codec.bstr_header(len(auth_data)),
        auth_data,
        b"\x03",
        codec.bstr_header(len(signature)),
        signature,
    ]
    count = 3
    if record is not None:
        # §6.2.2 step 12.c: user identifiable information only after UV, with several accounts.
        user = record.user if uv and number is not None else {"id": record.user_id}
        parts += [b"\x04", codec.encode(user)]
        count += 1
    if number:
        parts += [b"\x05", codec.encode(number)]
        count += 1
    if extensions.large_blob_key and record is not None and record.large_blob_key is not None:
        parts += [b"\x07\x58\x20", record.large_blob_key]
        count += 1
    parts[0] = bytes((0x00, 0xA0 | count))
    return b"".join(parts)
