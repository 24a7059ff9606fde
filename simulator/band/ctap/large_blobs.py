"""authenticatorLargeBlobs (0x0C), CTAP 2.1 §6.10.

The serialized large-blob array is CBOR(array) || LEFT(SHA-256(CBOR(array)), 16). Reads return
fragments of the stored array; writes arrive in fragments at increasing offsets, are collected in
volatile memory, and are committed (one storage write) only when the last fragment's integrity
hash checks out.
"""

from __future__ import annotations

import enum
import hashlib
import struct
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from . import codec
from .constants import KEY_LARGE_BLOB, Permission, WireEnum
from .errors import ERR, CtapError

if TYPE_CHECKING:
    from .context import Core

#: The initial serialized large-blob array: an empty CBOR array and its truncated hash (§6.10.2).
INITIAL_ARRAY = bytes.fromhex("8076be8b528d0075f7aae98d6fa57a6d3c")
#: The smallest capacity the spec allows (§6.10.2 step 5.b.ii).
MIN_CAPACITY = 1024


class LargeBlobs:
    """Keys of authenticatorLargeBlobs (§6.10)."""

    @enum.unique
    class PARAM(WireEnum):
        GET = 0x01
        SET = 0x02
        OFFSET = 0x03
        LENGTH = 0x04
        PIN_UV_AUTH_PARAM = 0x05
        PIN_UV_AUTH_PROTOCOL = 0x06

    @enum.unique
    class RESULT(WireEnum):
        CONFIG = 0x01


@dataclass
class PendingWrite:
    expected_length: int
    buffer: bytearray = field(default_factory=bytearray)


def capacity(core: Core) -> int:
    return max(core.spec.max_large_blob_array, MIN_CAPACITY)


def stored_array(core: Core) -> bytes:
    return core.storage.get(KEY_LARGE_BLOB) or INITIAL_ARRAY


def large_blobs(core: Core, params: Mapping[int, Any]) -> dict[int, Any]:
    """Serve one get or set of the large-blob array (§6.10.2)."""
    P = LargeBlobs.PARAM
    get = codec.get_uint(params, P.GET)
    data = codec.get_bytes(params, P.SET)
    offset = codec.get_uint(params, P.OFFSET)
    length = codec.get_uint(params, P.LENGTH)
    pin_param = codec.get_bytes(params, P.PIN_UV_AUTH_PARAM)
    version = codec.get_uint(params, P.PIN_UV_AUTH_PROTOCOL)
    max_fragment = core.spec.max_msg_size - 64
    # Steps 1-3.
    if offset is None or (get is None) == (data is None):
        raise CtapError(ERR.INVALID_PARAMETER)
    if get is not None:
        # Step 4.
        if length is not None or pin_param is not None or version is not None:
            raise CtapError(ERR.INVALID_PARAMETER)
        if get > max_fragment:
            raise CtapError(ERR.INVALID_LENGTH)
        array = stored_array(core)
        if offset > len(array):
            raise CtapError(ERR.INVALID_PARAMETER)
        return {LargeBlobs.RESULT.CONFIG: array[offset : offset + get]}
    # Step 5: set.
    assert data is not None
    if len(data) > max_fragment:
        raise CtapError(ERR.INVALID_LENGTH)
    if offset == 0:
        if length is None:
            raise CtapError(ERR.INVALID_PARAMETER)
        if length > capacity(core):
            raise CtapError(ERR.LARGE_BLOB_STORAGE_FULL)
        if length < 17:
            raise CtapError(ERR.INVALID_PARAMETER)
    elif length is not None:
        raise CtapError(ERR.INVALID_PARAMETER)
    pending = core.blob_write if offset else PendingWrite(length or 0)
    if not isinstance(pending, PendingWrite) or offset != len(pending.buffer):
        raise CtapError(ERR.INVALID_SEQ)
    if core.protected() or core.always_uv():
        if pin_param is None:
            raise CtapError(ERR.PUAT_REQUIRED)
        if version is None:
            raise CtapError(ERR.MISSING_PARAMETER)
        core.pin.protocol(version)
        message = (
            b"\xff" * 32 + b"\x0c\x00" + struct.pack("<I", offset) + hashlib.sha256(data).digest()
        )
        core.pin.verify(version, message, pin_param)
        core.pin.require(Permission.LBW)
    if offset + len(data) > pending.expected_length:
        raise CtapError(ERR.INVALID_PARAMETER)
    pending.buffer += data
    core.blob_write = pending
    if len(pending.buffer) == pending.expected_length:
        core.blob_write = None
        array = bytes(pending.buffer)
        if hashlib.sha256(array[:-16]).digest()[:16] != array[-16:]:
            raise CtapError(ERR.INTEGRITY_FAILURE)
        core.storage.put(KEY_LARGE_BLOB, array)
    return {}
