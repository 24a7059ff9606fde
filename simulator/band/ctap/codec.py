"""CBOR in and out: strict request decoding, typed parameter access, CTAP2 canonical encoding.

Requests (CTAP 2.1 §8 "Message Encoding") are decoded with the C-accelerated ``cbor2``; anything
that is not one well-formed CBOR item (truncated, trailing bytes, indefinite lengths, duplicate
keys, invalid UTF-8, nesting deeper than we accept) is ``CTAP2_ERR_INVALID_CBOR``. The parameter
map must be a map with unsigned integer keys; a value of the wrong type is
``CTAP2_ERR_CBOR_UNEXPECTED_TYPE`` and a missing mandatory value ``CTAP2_ERR_MISSING_PARAMETER``.

Responses use the CTAP2 canonical form (§8 "CTAP2 canonical CBOR encoding form"): map keys sorted
by major type, then by encoded length, then bytewise; shortest integer and length encodings;
definite lengths only.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

import cbor2

from nymi_device.protocol.management_cbor import encode as canonical_encode

from .errors import ERR, CtapError

#: Deeper nesting than CTAP needs (it caps messages at four levels) is refused outright.
MAX_DEPTH = 16

Params = Mapping[int, Any]
_EMPTY: dict[int, Any] = {}


class RequestDecoder:
    """Decodes request parameter maps with one reused ``cbor2`` stream decoder.

    Not thread-safe: the authenticator serialises requests. ``cbor2.loads`` would silently ignore
    bytes after the first item; the stream decoder leaves its stream positioned just after the
    item, so trailing bytes are detected exactly.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._stream = io.BytesIO(b"")
        self._decoder = cbor2.CBORDecoder(
            self._stream, allow_indefinite=False, allow_duplicate_keys=False, max_depth=MAX_DEPTH
        )

    def params(self, request: bytes) -> Params:
        """The parameter map of ``request`` after its command byte."""
        length = len(request)
        if length <= 1:
            return _EMPTY
        stream = self._stream
        _reinit(stream, request)  # the decoder keeps reading from the same stream object
        stream.seek(1)
        try:
            value = self._decoder.decode()
        except Exception:  # cbor2 raises decode errors, and builtins for some malformed tags
            self._reset()
            raise CtapError(ERR.INVALID_CBOR) from None
        if stream.tell() != length:
            raise CtapError(ERR.INVALID_CBOR)
        if type(value) is not dict:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        for key in value:
            if type(key) is not int or key < 0:
                raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
        return value

    def item(self, data: bytes, offset: int = 0) -> Any:
        """Exactly one CBOR item from ``data[offset:]``; anything else is INVALID_CBOR."""
        stream = self._stream
        _reinit(stream, data)  # the decoder keeps reading from the same stream object
        if offset:
            stream.seek(offset)
        try:
            value = self._decoder.decode()
        except Exception:  # cbor2 raises decode errors, and builtins for some malformed tags
            self._reset()
            raise CtapError(ERR.INVALID_CBOR) from None
        if stream.tell() != len(data):
            raise CtapError(ERR.INVALID_CBOR)
        return value


_reinit = io.BytesIO.__init__


def decode_params(request: bytes) -> Params:
    """Decode the CBOR parameter map of a request (command byte first)."""
    return RequestDecoder().params(request)


def decode_item(data: bytes) -> Any:
    """Decode exactly one CBOR item (stored records, platform-supplied blobs)."""
    return RequestDecoder().item(data)


# -- typed access -------------------------------------------------------------------------
#
# A key that is present with a value of the wrong type (CBOR null included) is
# CTAP2_ERR_CBOR_UNEXPECTED_TYPE; an absent mandatory key is CTAP2_ERR_MISSING_PARAMETER.

_ABSENT: Any = object()


def _lookup(params: Mapping[Any, Any], key: Any, kind: type, required: bool) -> Any:
    value = params.get(key, _ABSENT)
    if value is _ABSENT:
        if required:
            raise CtapError(ERR.MISSING_PARAMETER)
        return None
    if type(value) is not kind:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def get_bytes(params: Mapping[Any, Any], key: Any) -> bytes | None:
    value: bytes | None = _lookup(params, key, bytes, False)
    return value


def need_bytes(params: Mapping[Any, Any], key: Any) -> bytes:
    value: bytes = _lookup(params, key, bytes, True)
    return value


def get_str(params: Mapping[Any, Any], key: Any) -> str | None:
    value: str | None = _lookup(params, key, str, False)
    return value


def need_str(params: Mapping[Any, Any], key: Any) -> str:
    value: str = _lookup(params, key, str, True)
    return value


def get_int(params: Mapping[Any, Any], key: Any) -> int | None:
    value: int | None = _lookup(params, key, int, False)
    return value


def get_uint(params: Mapping[Any, Any], key: Any) -> int | None:
    value: int | None = _lookup(params, key, int, False)
    if value is not None and value < 0:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def need_uint(params: Mapping[Any, Any], key: Any) -> int:
    value: int = _lookup(params, key, int, True)
    if value < 0:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def get_bool(params: Mapping[Any, Any], key: Any) -> bool | None:
    value: bool | None = _lookup(params, key, bool, False)
    return value


def get_map(params: Mapping[Any, Any], key: Any) -> dict[Any, Any] | None:
    value: dict[Any, Any] | None = _lookup(params, key, dict, False)
    return value


def need_map(params: Mapping[Any, Any], key: Any) -> dict[Any, Any]:
    value: dict[Any, Any] = _lookup(params, key, dict, True)
    return value


def get_list(params: Mapping[Any, Any], key: Any) -> list[Any] | None:
    value: list[Any] | None = _lookup(params, key, list, False)
    return value


def get_options(params: Mapping[Any, Any], key: Any) -> dict[str, bool]:
    """The ``options`` map: text keys, boolean values (CTAP 2.1 §6.1 / §6.2 parameter 0x07/0x05)."""
    value = get_map(params, key)
    if value is None:
        return {}
    for name, flag in value.items():
        if type(name) is not str or type(flag) is not bool:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def get_extensions(params: Mapping[Any, Any], key: Any) -> dict[str, Any]:
    """The ``extensions`` map: extension identifiers (text) to inputs (CTAP 2.1 §12)."""
    value = get_map(params, key)
    if value is None:
        return {}
    for name in value:
        if type(name) is not str:
            raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return value


def parse_descriptor(value: Any) -> tuple[str, bytes]:
    """A PublicKeyCredentialDescriptor: ``type`` (text) and ``id`` (bytes) are required members.

    A missing member is ``CTAP2_ERR_INVALID_CBOR`` and a member of the wrong type
    ``CTAP2_ERR_CBOR_UNEXPECTED_TYPE``, as §6.1.2 step 3 prescribes for list elements.
    """
    if type(value) is not dict:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    kind = value.get("type")
    cred_id = value.get("id")
    if kind is None or cred_id is None:
        raise CtapError(ERR.INVALID_CBOR)
    if type(kind) is not str or type(cred_id) is not bytes:
        raise CtapError(ERR.CBOR_UNEXPECTED_TYPE)
    return kind, cred_id


def parse_descriptor_list(params: Mapping[Any, Any], key: Any) -> list[tuple[str, bytes]] | None:
    items = get_list(params, key)
    if items is None:
        return None
    return [parse_descriptor(item) for item in items]


# -- canonical encoding --------------------------------------------------------------------


def encode(value: Any) -> bytes:
    """Encode in the CTAP2 canonical form (python-fido2 rejects anything else): the project's
    one deterministic encoder, :func:`nymi_device.protocol.management_cbor.encode` (shortest
    heads, definite lengths, map keys sorted by their encoded bytes, which for CTAP's integer
    and text keys is the CTAP2 canonical order)."""
    return canonical_encode(value)


def bstr_header(length: int) -> bytes:
    """The head of a CBOR byte string of ``length`` bytes (major type 2, shortest form)."""
    if length < 0x100:
        return BSTR_HEADERS[length]
    if length < 0x10000:
        return bytes((0x59, length >> 8, length & 0xFF))
    return b"\x5a" + length.to_bytes(4, "big")


BSTR_HEADERS = [bytes((0x40 | n,)) if n < 24 else bytes((0x58, n)) for n in range(0x100)]
