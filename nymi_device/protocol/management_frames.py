"""Framing of the band management protocol: fragments of one GATT value each (docs/protocol.md §4).

Pure: bytes in, bytes out, no I/O and no clock. A message of 1 … :data:`MAX_MESSAGE` bytes
travels as one or more fragments::

    first:         MSG(1) | INDEX(1) = 0      | LENGTH(2, big-endian) | DATA
    continuation:  MSG(1) | INDEX(1) = 1..255                        | DATA

:class:`Fragmenter` cuts messages for a given ATT_MTU (a fragment is at most
min(ATT_MTU - 3, 512) bytes); :class:`Reassembler` puts them back together and turns every
malformed, lost or out-of-order fragment into a :class:`FrameError` carrying the status of §4,
never an exception, and drops duplicates.
"""

from __future__ import annotations

from dataclasses import dataclass

from nymi_device.errors import InvalidInputError, StatusCode

__all__ = [
    "CONT_HEADER_SIZE",
    "DEFAULT_ATT_MTU",
    "FIRST_HEADER_SIZE",
    "MAX_ATT_MTU",
    "MAX_FRAGMENTS",
    "MAX_FRAGMENT_SIZE",
    "MAX_MESSAGE",
    "MIN_ATT_MTU",
    "Fragmenter",
    "FrameError",
    "Reassembler",
    "check_att_mtu",
    "fragment_message",
]

# fmt: off
MAX_MESSAGE       = 4096    # largest encoded message, plain or record (§12)
FIRST_HEADER_SIZE = 4       # MSG, INDEX = 0, LENGTH (2)
CONT_HEADER_SIZE  = 2       # MSG, INDEX
MAX_FRAGMENTS     = 256     # INDEX is one byte
MAX_FRAGMENT_SIZE = 512     # the largest ATT attribute value
MIN_ATT_MTU       = 23      # Bluetooth Core Vol 3 Part F 3.2.8: the LE minimum
MAX_ATT_MTU       = 517     # 512-byte values + the 3-byte ATT header
DEFAULT_ATT_MTU   = MIN_ATT_MTU
# fmt: on


def check_att_mtu(att_mtu: int) -> int:
    """``att_mtu`` if it is a legal ATT_MTU (§3), else :class:`InvalidInputError`."""
    if isinstance(att_mtu, bool) or not isinstance(att_mtu, int):
        raise InvalidInputError(f"ATT_MTU must be an integer, got {att_mtu!r}")
    if not MIN_ATT_MTU <= att_mtu <= MAX_ATT_MTU:
        raise InvalidInputError(f"ATT_MTU must be {MIN_ATT_MTU}..{MAX_ATT_MTU}, got {att_mtu}")
    return att_mtu


def fragment_message(message: bytes, message_number: int, att_mtu: int) -> list[bytes]:
    """The fragments of ``message`` for a link with ``att_mtu`` (§4)."""
    check_att_mtu(att_mtu)
    if not 1 <= len(message) <= MAX_MESSAGE:
        raise InvalidInputError(f"a message is 1..{MAX_MESSAGE} bytes, got {len(message)}")
    if not 0 <= message_number <= 0xFF:
        raise InvalidInputError(f"message number must be 0..255, got {message_number}")
    value_size = min(att_mtu - 3, MAX_FRAGMENT_SIZE)  # an attribute value is at most 512 bytes
    first = value_size - FIRST_HEADER_SIZE
    rest = value_size - CONT_HEADER_SIZE
    fragments = [
        bytes((message_number, 0)) + len(message).to_bytes(2, "big") + message[:first]
    ]
    for index, offset in enumerate(range(first, len(message), rest), start=1):
        fragments.append(bytes((message_number, index)) + message[offset : offset + rest])
    # Unreachable for legal sizes: 16 + 255 * 18 >= MAX_MESSAGE at the smallest MTU.
    assert len(fragments) <= MAX_FRAGMENTS
    return fragments


class Fragmenter:
    """Cuts one direction's messages into fragments, numbering the messages 0, 1, … 255, 0, …"""

    def __init__(self, att_mtu: int = DEFAULT_ATT_MTU) -> None:
        self._att_mtu = check_att_mtu(att_mtu)
        self._next = 0

    @property
    def att_mtu(self) -> int:
        return self._att_mtu

    @att_mtu.setter
    def att_mtu(self, value: int) -> None:
        self._att_mtu = check_att_mtu(value)

    def fragment(self, message: bytes) -> list[bytes]:
        fragments = fragment_message(message, self._next, self._att_mtu)
        self._next = (self._next + 1) & 0xFF
        return fragments

    def reset(self) -> None:
        """A new connection numbers its messages from 0 again."""
        self._next = 0


@dataclass(frozen=True)
class FrameError:
    """A fragment the reassembler refused (§4): the status to report, and the message number."""

    status: StatusCode
    message_number: int | None
    reason: str


class Reassembler:
    """Reassembles one direction's messages; keeps at most one partial message (§4)."""

    def __init__(self, max_message: int = MAX_MESSAGE) -> None:
        self.max_message = max_message
        self._number: int | None = None  # the partial message's number, None when idle
        self._length = 0
        self._buffer = bytearray()
        self._last_index = 0
        self._previous = b""
        self._discarding: int | None = None  # continuations of this number are dropped

    @property
    def partial(self) -> bool:
        """Whether part of a message has arrived and the rest has not."""
        return self._number is not None

    def reset(self) -> None:
        """Drop any partial message (the connection ended)."""
        self._idle()
        self._discarding = None
        self._previous = b""

    def push(self, fragment: bytes) -> list[bytes | FrameError]:
        """Take one fragment; return the messages it completes and the errors it reveals."""
        fragment = bytes(fragment)
        if fragment == self._previous:
            return []  # a duplicate: consecutive fragments always differ in MSG or INDEX
        self._previous = fragment
        if len(fragment) < CONT_HEADER_SIZE or len(fragment) > MAX_FRAGMENT_SIZE:
            return [self._refuse(None, f"a fragment of {len(fragment)} bytes")]
        number, index = fragment[0], fragment[1]
        if index == 0:
            return self._first(number, fragment)
        return self._continuation(number, index, fragment)

    def _first(self, number: int, fragment: bytes) -> list[bytes | FrameError]:
        out: list[bytes | FrameError] = []
        if self._number is not None:
            out.append(self._refuse(self._number, "a new message began before this one ended"))
        self._discarding = None
        if len(fragment) < FIRST_HEADER_SIZE:
            out.append(self._refuse(number, "a first fragment without its length"))
            return out
        length = int.from_bytes(fragment[2:4], "big")
        data = fragment[FIRST_HEADER_SIZE:]
        if length == 0:
            out.append(self._refuse(number, "a message of length 0"))
        elif length > self.max_message:
            out.append(self._refuse(number, f"a message of {length} bytes (limit "
                                            f"{self.max_message})", StatusCode.MESSAGE_TOO_LARGE))
        elif len(data) > length:
            out.append(self._refuse(number, "more data than the announced length"))
        elif len(data) == length:
            out.append(data)
        else:
            self._number, self._length = number, length
            self._buffer = bytearray(data)
            self._last_index = 0
        return out

    def _continuation(self, number: int, index: int, fragment: bytes) -> list[bytes | FrameError]:
        if self._number is None:
            if number == self._discarding:
                return []  # the rest of a message already reported
            return [self._refuse(number, f"fragment {index} of a message that never began")]
        if number != self._number:
            reason = f"a fragment of message {number} inside message {self._number}"
            return [self._refuse(self._number, reason)]
        if index != self._last_index + 1:
            return [self._refuse(number, f"fragment {index} after {self._last_index}: lost or "
                                         "out of order")]
        data = fragment[CONT_HEADER_SIZE:]
        if not data:
            return [self._refuse(number, "an empty continuation")]
        if len(self._buffer) + len(data) > self._length:
            return [self._refuse(number, "more data than the announced length")]
        self._buffer += data
        self._last_index = index
        if len(self._buffer) < self._length:
            return []
        message = bytes(self._buffer)
        self._idle()
        return [message]

    def _idle(self) -> None:
        self._number = None
        self._length = 0
        self._buffer = bytearray()
        self._last_index = 0

    def _refuse(
        self, number: int | None, reason: str, status: StatusCode = StatusCode.INVALID_FRAME
    ) -> FrameError:
        """Drop the partial message; ignore the rest of message ``number``; report it."""
        self._idle()
        self._discarding = number
        return FrameError(status, number, reason)
