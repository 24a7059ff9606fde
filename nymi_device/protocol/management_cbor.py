"""The deterministic CBOR subset of the band management protocol (docs/protocol.md §5.1).

Pure functions, bytes in, objects out. The subset: unsigned and negative integers (64-bit), byte
strings, UTF-8 text, arrays, maps with integer or text keys, ``false``, ``true``, ``null`` and
floats. :func:`encode` writes the deterministic encoding of RFC 8949 §4.2.1 (shortest heads,
definite lengths, map keys sorted by their encoded bytes), floats always 64-bit.
:func:`decode` accepts exactly that (plus 16- and 32-bit floats) and rejects everything else with
:class:`CborError`, never with another exception: tags, indefinite lengths, simple values,
non-shortest heads, unsorted or duplicate keys, invalid UTF-8, nesting deeper than
:data:`MAX_DEPTH`, truncation and trailing bytes.
"""

from __future__ import annotations

import struct

from nymi_device.errors import InvalidInputError

__all__ = ["MAX_DEPTH", "CborError", "decode", "encode"]

#: Deepest nesting of arrays and maps (docs/protocol.md §12).
MAX_DEPTH = 8

# fmt: off
_UINT, _NINT, _BYTES, _TEXT, _ARRAY, _MAP, _TAG, _SIMPLE = range(8)
_FALSE, _TRUE, _NULL = 0xF4, 0xF5, 0xF6
_FLOAT16, _FLOAT32, _FLOAT64 = 25, 26, 27
_MAX_UINT = (1 << 64) - 1
_BINARY = (bytes, bytearray, memoryview)
_SEQUENCE = (list, tuple)
_KEY = (int, str)
_SMALL_KEYS = [bytes((n,)) for n in range(24)]  # the encodings of the integers 0..23
# fmt: on


class CborError(InvalidInputError):
    """Bytes that are not a message of the protocol's CBOR subset, or a value it cannot carry."""


# -- encoding ----------------------------------------------------------------------------------


def encode(value: object) -> bytes:
    """The deterministic encoding of ``value`` (bool, int, float, bytes, str, list, tuple, dict)."""
    out = bytearray()
    _encode(value, out, 0)
    return bytes(out)


def _head(major: int, argument: int, out: bytearray) -> None:
    if argument < 24:
        out.append(major << 5 | argument)
    elif argument <= 0xFF:
        out += bytes((major << 5 | 24, argument))
    elif argument <= 0xFFFF:
        out.append(major << 5 | 25)
        out += argument.to_bytes(2, "big")
    elif argument <= 0xFFFFFFFF:
        out.append(major << 5 | 26)
        out += argument.to_bytes(4, "big")
    else:
        out.append(major << 5 | 27)
        out += argument.to_bytes(8, "big")


def _encode(value: object, out: bytearray, depth: int) -> None:
    if value is None:
        out.append(_NULL)
    elif value is True:
        out.append(_TRUE)
    elif value is False:
        out.append(_FALSE)
    elif isinstance(value, int):
        if not -(1 << 64) <= value <= _MAX_UINT:
            raise CborError(f"integer {value} does not fit in 64 bits")
        if value >= 0:
            _head(_UINT, value, out)
        else:
            _head(_NINT, -1 - value, out)
    elif isinstance(value, float):
        out.append(_SIMPLE << 5 | _FLOAT64)
        out += struct.pack(">d", value)
    elif isinstance(value, _BINARY):
        raw = bytes(value)
        _head(_BYTES, len(raw), out)
        out += raw
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        _head(_TEXT, len(raw), out)
        out += raw
    elif isinstance(value, _SEQUENCE):
        _nest(depth)
        _head(_ARRAY, len(value), out)
        for item in value:
            _encode(item, out, depth + 1)
    elif isinstance(value, dict):
        _nest(depth)
        entries: list[tuple[bytes, object]] = []
        for key, item in value.items():
            if isinstance(key, bool) or not isinstance(key, _KEY):
                raise CborError(f"map key {key!r} is neither an integer nor text")
            if isinstance(key, int) and 0 <= key < 24:
                entries.append((_SMALL_KEYS[key], item))
            else:
                entries.append((encode(key), item))
        entries.sort(key=lambda entry: entry[0])
        _head(_MAP, len(entries), out)
        for encoded_key, item in entries:
            out += encoded_key
            _encode(item, out, depth + 1)
    else:
        raise CborError(f"cannot encode a {type(value).__name__}")


def _nest(depth: int) -> None:
    if depth >= MAX_DEPTH:
        raise CborError(f"nesting deeper than {MAX_DEPTH}")


# -- decoding ----------------------------------------------------------------------------------


def decode(data: bytes) -> object:
    """The value encoded in ``data``; :class:`CborError` unless it is exactly one valid item."""
    value, end = _Decoder(bytes(data)).item(0, 0)
    if end != len(data):
        raise CborError(f"{len(data) - end} trailing bytes after the message")
    return value


class _Decoder:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def take(self, offset: int, size: int) -> bytes:
        end = offset + size
        if end > len(self.data):
            raise CborError("message ends inside an item")
        return self.data[offset:end]

    def item(self, offset: int, depth: int) -> tuple[object, int]:
        if offset >= len(self.data):
            raise CborError("message ends inside an item")
        initial = self.data[offset]
        major, info = initial >> 5, initial & 0x1F
        offset += 1
        if major == _SIMPLE:
            return self.simple(offset, info)
        if info < 24:
            argument = info
        elif info > 27:
            raise CborError("indefinite lengths and reserved heads are not allowed")
        else:
            size = 1 << (info - 24)
            argument = int.from_bytes(self.take(offset, size), "big")
            if argument < (24 if size == 1 else 1 << (4 * size)):
                raise CborError("integer or length not in its shortest form")
            offset += size
        if major == _UINT:
            return argument, offset
        if major == _NINT:
            return -1 - argument, offset
        if major == _BYTES:
            return self.take(offset, argument), offset + argument
        if major == _TEXT:
            try:
                return self.take(offset, argument).decode("utf-8"), offset + argument
            except UnicodeDecodeError:
                raise CborError("text is not valid UTF-8") from None
        if major == _ARRAY:
            return self.array(offset, argument, depth)
        if major == _MAP:
            return self.map(offset, argument, depth)
        raise CborError("tags are not allowed")

    def array(self, offset: int, count: int, depth: int) -> tuple[object, int]:
        if depth >= MAX_DEPTH:
            raise CborError(f"nesting deeper than {MAX_DEPTH}")
        if count > len(self.data) - offset:
            raise CborError("array longer than the message")
        items: list[object] = []
        for _ in range(count):
            item, offset = self.item(offset, depth + 1)
            items.append(item)
        return items, offset

    def map(self, offset: int, count: int, depth: int) -> tuple[object, int]:
        if depth >= MAX_DEPTH:
            raise CborError(f"nesting deeper than {MAX_DEPTH}")
        if 2 * count > len(self.data) - offset:
            raise CborError("map longer than the message")
        result: dict[int | str, object] = {}
        previous = b""
        for _ in range(count):
            start = offset
            key, offset = self.item(offset, depth + 1)
            if isinstance(key, bool) or not isinstance(key, _KEY):
                raise CborError("map keys must be integers or text")
            encoded_key = self.data[start:offset]
            if previous and encoded_key <= previous:
                raise CborError("map keys are not in deterministic order, or repeat")
            previous = encoded_key
            result[key], offset = self.item(offset, depth + 1)
        return result, offset

    def simple(self, offset: int, info: int) -> tuple[object, int]:
        if info == _FALSE & 0x1F:
            return False, offset
        if info == _TRUE & 0x1F:
            return True, offset
        if info == _NULL & 0x1F:
            return None, offset
        if info == _FLOAT16:
            return struct.unpack(">e", self.take(offset, 2))[0], offset + 2
        if info == _FLOAT32:
            return struct.unpack(">f", self.take(offset, 4))[0], offset + 4
        if info == _FLOAT64:
            return struct.unpack(">d", self.take(offset, 8))[0], offset + 8
        raise CborError(f"simple value {info} is not allowed")
