"""Authenticator extensions (CTAP 2.1 §12): credProtect, hmac-secret, credBlob, largeBlobKey,
minPinLength. Only the extensions a fixture lists are processed; others are ignored (§6.1.2
step 15.1, §6.2.2 step 10.1). Outputs go into the authenticator data's extensions map, except
largeBlobKey which has its own response member (§12.3).
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import codec
from .constants import (
    EXT_CRED_BLOB,
    EXT_CRED_PROTECT,
    EXT_HMAC_SECRET,
    EXT_LARGE_BLOB_KEY,
    EXT_MIN_PIN_LENGTH,
    MAX_CRED_BLOB_LENGTH,
    CredProtect,
)
from .errors import ERR, CtapError

if TYPE_CHECKING:
    from .context import Core
    from .credentials import Credential
    from .pin_protocol import PinUvAuthProtocol


@dataclass
class RegistrationExtensions:
    """What makeCredential's extension inputs ask for, and the outputs they produce."""

    cred_protect: CredProtect = CredProtect.UV_OPTIONAL
    cred_blob: bytes | None = None
    large_blob_key: bytes | None = None
    outputs: dict[str, Any] = field(default_factory=dict)

    def encoded_outputs(self) -> bytes:
        return codec.encode(self.outputs) if self.outputs else b""


def _type(value: Any, kind: type) -> Any:
    if type(value) is not kind:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def registration(
    core: Core, inputs: dict[str, Any], rp_id: str, rk: bool
) -> RegistrationExtensions:
    """Check makeCredential extension inputs that can fail before any user interaction."""
    supported = core.features.extensions
    result = RegistrationExtensions()
    if EXT_CRED_PROTECT in inputs and EXT_CRED_PROTECT in supported:
        level = _type(inputs[EXT_CRED_PROTECT], int)
        if level in (1, 2, 3):
            result.cred_protect = CredProtect(level)
            result.outputs[EXT_CRED_PROTECT] = level
    if EXT_HMAC_SECRET in inputs and EXT_HMAC_SECRET in supported:
        if _type(inputs[EXT_HMAC_SECRET], bool):
            result.outputs[EXT_HMAC_SECRET] = True
    if EXT_CRED_BLOB in inputs and EXT_CRED_BLOB in supported:
        blob = _type(inputs[EXT_CRED_BLOB], bytes)
        stored = rk and len(blob) <= MAX_CRED_BLOB_LENGTH
        result.cred_blob = blob if stored else None
        result.outputs[EXT_CRED_BLOB] = stored
    if EXT_LARGE_BLOB_KEY in inputs and EXT_LARGE_BLOB_KEY in supported:
        # §12.3: the input must be true, and only discoverable credentials get a key.
        if not _type(inputs[EXT_LARGE_BLOB_KEY], bool) or not rk:
            raise CtapError(ERR.INVALID_OPTION)
        result.large_blob_key = core.rng(32)
    if EXT_MIN_PIN_LENGTH in inputs and EXT_MIN_PIN_LENGTH in supported:
        state = core.settings.state
        if _type(inputs[EXT_MIN_PIN_LENGTH], bool) and rp_id in state.min_pin_rp_ids:
            result.outputs[EXT_MIN_PIN_LENGTH] = state.min_pin_length
    return result


class AssertionExtensions:
    """getAssertion extension inputs, validated once and applied to each returned credential."""

    __slots__ = ("_hmac", "any_output", "cred_blob", "large_blob_key")

    def __init__(self) -> None:
        self._hmac: tuple[PinUvAuthProtocol, bytes, bytes] | None = None
        self.cred_blob = False
        self.large_blob_key = False
        #: Whether any extension output goes into the authenticator data.
        self.any_output = False

    @classmethod
    def parse(cls, core: Core, inputs: dict[str, Any]) -> AssertionExtensions:
        """Type checks only; the hmac-secret key agreement runs later (:meth:`prepare`)."""
        ext = cls()
        supported = core.features.extensions
        if EXT_CRED_BLOB in inputs and EXT_CRED_BLOB in supported:
            ext.cred_blob = _type(inputs[EXT_CRED_BLOB], bool)
            ext.any_output = ext.cred_blob
        if EXT_LARGE_BLOB_KEY in inputs and EXT_LARGE_BLOB_KEY in supported:
            if not _type(inputs[EXT_LARGE_BLOB_KEY], bool):
                raise CtapError(ERR.INVALID_OPTION)
            ext.large_blob_key = True
        return ext

    def prepare(self, core: Core, inputs: dict[str, Any]) -> None:
        """hmac-secret (§12.5): agree a shared secret, check saltAuth, decrypt the salts."""
        if EXT_HMAC_SECRET not in inputs or EXT_HMAC_SECRET not in core.features.extensions:
            return
        value = _type(inputs[EXT_HMAC_SECRET], dict)
        key_agreement = codec.need_map(value, 1)
        salt_enc = codec.need_bytes(value, 2)
        salt_auth = codec.need_bytes(value, 3)
        version = codec.get_uint(value, 4)
        protocol = core.pin.protocols.get(1 if version is None else version)
        if protocol is None:
            raise CtapError(ERR.INVALID_PARAMETER)
        secret = protocol.decapsulate(key_agreement)
        if not protocol.verify(secret, salt_enc, salt_auth):
            raise CtapError(ERR.PIN_AUTH_INVALID)
        salts = protocol.decrypt(secret, salt_enc)
        if salts is None or len(salts) not in (32, 64):
            raise CtapError(ERR.INVALID_LENGTH)
        self._hmac = (protocol, secret, salts)
        self.any_output = True

    def outputs(self, core: Core, credential: Credential, uv: bool) -> bytes:
        """The CBOR extensions map for this credential's authenticator data (may be empty)."""
        outputs: dict[str, Any] = {}
        if self.cred_blob:
            record = credential.record
            outputs[EXT_CRED_BLOB] = record.cred_blob if record and record.cred_blob else b""
        if self._hmac is not None:
            protocol, secret, salts = self._hmac
            cred_random = core.creds.cred_random(credential, uv)
            out = hmac.new(cred_random, salts[:32], hashlib.sha256).digest()
            if len(salts) == 64:
                out += hmac.new(cred_random, salts[32:], hashlib.sha256).digest()
            outputs[EXT_HMAC_SECRET] = protocol.encrypt(secret, out)
        return codec.encode(outputs) if outputs else b""
