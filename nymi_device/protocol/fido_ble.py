"""FIDO over Bluetooth LE framing (CTAP 2.1 §11.4), the GATT UUIDs and the band's advertisement.

Pure functions and small value objects only: bytes in, objects out. The emulated band's GATT
server and the host's :class:`~nymi_device.transport.ble.CtapBleDevice` both use this module, so
the two can never disagree on a frame.

A *message* (a command and up to 65535 bytes of data) travels as one *initialisation fragment*
followed by *continuation fragments* (§11.4.4)::

    init:          CMD(1, bit 7 set) | HLEN(1) | LLEN(1) | DATA
    continuation:  SEQ(1, 0x00..0x7F)                     | DATA

A fragment is at most ``max_fragment`` bytes: ``fidoControlPointLength`` for requests the client
writes, ``ATT_MTU - 3`` for notifications from the authenticator. SEQ starts at 0 and wraps from
0x7F back to 0x00. Requests are MSG (a CTAP2 request: command byte + CBOR, or a U2F APDU), PING
or CANCEL; responses are MSG, PING, KEEPALIVE (one status byte) or ERROR (one error byte).

The band also puts its serial and a state byte into its advertisement (manufacturer-specific
data, :func:`encode_manufacturer_data`) so a scanner sees who is near and in what state without
connecting. That layout is ours (the vendor's is not public) and documented at
:data:`MANUFACTURER_DATA_VERSION`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from nymi_device.protocol.keepalive import KeepaliveStatus

__all__ = [
    "BATTERY_LEVEL",
    "BATTERY_SERVICE",
    "COMPANY_ID",
    "DEVICE_INFORMATION_SERVICE",
    "FIDO_CONTROL_POINT",
    "FIDO_CONTROL_POINT_LENGTH",
    "FIDO_SERVICE",
    "FIDO_SERVICE_REVISION_BITFIELD",
    "FIDO_STATUS",
    "FIRMWARE_REVISION",
    "HARDWARE_REVISION",
    "MANUFACTURER_DATA_VERSION",
    "MANUFACTURER_NAME",
    "MAX_CONTROL_POINT_LENGTH",
    "MAX_MESSAGE_SIZE",
    "MIN_CONTROL_POINT_LENGTH",
    "MODEL_NUMBER",
    "SERIAL_NUMBER",
    "BandBeacon",
    "BandFlags",
    "BleErrorCode",
    "Command",
    "Failure",
    "KeepaliveStatus",
    "Message",
    "Reassembler",
    "ServiceRevision",
    "decode_manufacturer_data",
    "encode_manufacturer_data",
    "error_frame",
    "fragment",
    "keepalive_frame",
    "uuid16",
]


def uuid16(value: int) -> str:
    """The 128-bit string form (lower case, as bleak reports it) of a 16-bit SIG UUID."""
    return f"0000{value:04x}-0000-1000-8000-00805f9b34fb"


# fmt: off
# --- FIDO service (CTAP 2.1 §11.4.5, "GATT Service Description") -------------------------
FIDO_SERVICE                   = uuid16(0xFFFD)
FIDO_CONTROL_POINT             = "f1d0fff1-deaa-ecee-b42f-c9ba7ed623bb"   # write
FIDO_STATUS                    = "f1d0fff2-deaa-ecee-b42f-c9ba7ed623bb"   # notify
FIDO_CONTROL_POINT_LENGTH      = "f1d0fff3-deaa-ecee-b42f-c9ba7ed623bb"   # read, uint16 BE
FIDO_SERVICE_REVISION_BITFIELD = "f1d0fff4-deaa-ecee-b42f-c9ba7ed623bb"   # read/write
# --- Device Information (0x180A) and Battery (0x180F) ------------------------------------
DEVICE_INFORMATION_SERVICE     = uuid16(0x180A)
MANUFACTURER_NAME              = uuid16(0x2A29)
MODEL_NUMBER                   = uuid16(0x2A24)
SERIAL_NUMBER                  = uuid16(0x2A25)
FIRMWARE_REVISION              = uuid16(0x2A26)
HARDWARE_REVISION              = uuid16(0x2A27)
BATTERY_SERVICE                = uuid16(0x180F)
BATTERY_LEVEL                  = uuid16(0x2A19)                           # read/notify, uint8 %

MIN_CONTROL_POINT_LENGTH = 20        # fidoControlPointLength range (§11.4.5)
MAX_CONTROL_POINT_LENGTH = 512
MAX_MESSAGE_SIZE         = 0xFFFF    # HLEN|LLEN is 16 bits
MAX_SEQ                  = 0x7F
INIT_HEADER              = 3         # CMD, HLEN, LLEN
TYPE_INIT                = 0x80
# fmt: on


class Command(enum.IntEnum):
    """Frame commands (§11.4.4); bit 7 is set on every initialisation fragment."""

    PING = 0x81
    KEEPALIVE = 0x82
    MSG = 0x83
    CANCEL = 0xBE
    ERROR = 0xBF


#: Commands a client may write to fidoControlPoint.
REQUEST_COMMANDS = frozenset({Command.PING, Command.MSG, Command.CANCEL})
#: Commands an authenticator may notify on fidoStatus.
RESPONSE_COMMANDS = frozenset({Command.PING, Command.MSG, Command.KEEPALIVE, Command.ERROR})


class BleErrorCode(enum.IntEnum):
    """The one data byte of an ERROR frame (§11.4.4). Same values as CTAP1/CTAP2 status codes."""

    INVALID_CMD = 0x01
    INVALID_PAR = 0x02
    INVALID_LEN = 0x03
    INVALID_SEQ = 0x04
    REQ_TIMEOUT = 0x05
    BUSY = 0x06
    OTHER = 0x7F

    @classmethod
    def _missing_(cls, value: object) -> BleErrorCode:
        return cls.OTHER


class ServiceRevision(enum.IntFlag):
    """fidoServiceRevisionBitfield: what the authenticator offers; the client writes one bit."""

    U2F_1_1 = 0x80
    U2F_1_2 = 0x40
    FIDO2 = 0x20


@dataclass(frozen=True)
class Message:
    """A reassembled message."""

    cmd: Command
    data: bytes


@dataclass(frozen=True)
class Failure:
    """A framing error: what an authenticator answers with an ERROR frame carrying ``code``."""

    code: BleErrorCode
    reason: str


def fragment(cmd: int, data: bytes, max_fragment: int) -> list[bytes]:
    """Split one message into fragments of at most ``max_fragment`` bytes.

    :raises ValueError: if ``cmd`` lacks bit 7, ``data`` exceeds 65535 bytes or ``max_fragment`` is
        too small to carry a header and one byte.
    """
    if not TYPE_INIT & cmd or not 0 <= cmd <= 0xFF:
        raise ValueError(f"command 0x{cmd:02x} is not an initialisation command")
    if len(data) > MAX_MESSAGE_SIZE:
        raise ValueError(f"a BLE message carries at most {MAX_MESSAGE_SIZE} bytes")
    if max_fragment < INIT_HEADER + 1:
        raise ValueError(f"fragments of {max_fragment} bytes cannot carry a message")
    first = max_fragment - INIT_HEADER
    frames = [bytes([cmd, len(data) >> 8, len(data) & 0xFF]) + data[:first]]
    step = max_fragment - 1
    for seq, offset in enumerate(range(first, len(data), step)):
        frames.append(bytes([seq & MAX_SEQ]) + data[offset:offset + step])
    return frames


def keepalive_frame(status: int) -> bytes:
    return bytes([Command.KEEPALIVE, 0, 1, status & 0xFF])


def error_frame(code: int) -> bytes:
    return bytes([Command.ERROR, 0, 1, code & 0xFF])


class Reassembler:
    """Collects fragments into messages, one message at a time.

    :meth:`feed` never raises for any input: it returns ``None`` while a message is incomplete,
    the :class:`Message` once it is, or a :class:`Failure` naming the spec error (after which
    the partial message is dropped and the next fragment must be an initialisation fragment).

    :param accept: the commands this side may receive; others fail with INVALID_CMD.
    :param max_message: the largest message accepted (an authenticator's maxMsgSize); a longer
        declared length fails with INVALID_LEN before any data is buffered.
    :param max_fragment: the largest fragment accepted, if limited.
    """

    def __init__(
        self,
        accept: frozenset[Command] = REQUEST_COMMANDS,
        *,
        max_message: int = MAX_MESSAGE_SIZE,
        max_fragment: int | None = None,
    ) -> None:
        self.accept = accept
        self.max_message = max_message
        self.max_fragment = max_fragment
        self._cmd: Command | None = None
        self._length = 0
        self._data = bytearray()
        self._seq = 0

    @property
    def busy(self) -> bool:
        """Whether a message is partly received."""
        return self._cmd is not None

    def reset(self) -> None:
        self._cmd = None
        self._length = 0
        self._data.clear()
        self._seq = 0

    def feed(self, frame: bytes) -> Message | Failure | None:
        if not frame:
            return self._fail(BleErrorCode.INVALID_LEN, "empty fragment")
        if self.max_fragment is not None and len(frame) > self.max_fragment:
            return self._fail(BleErrorCode.INVALID_LEN,
                              f"fragment of {len(frame)} bytes exceeds {self.max_fragment}")
        if frame[0] & TYPE_INIT:
            return self._init(frame)
        return self._continuation(frame)

    def _init(self, frame: bytes) -> Message | Failure | None:
        if self._cmd is not None:
            return self._fail(BleErrorCode.INVALID_SEQ,
                              "initialisation fragment while a message was incomplete")
        if len(frame) < INIT_HEADER:
            return self._fail(BleErrorCode.INVALID_LEN, "initialisation fragment too short")
        try:
            cmd = Command(frame[0])
        except ValueError:
            return self._fail(BleErrorCode.INVALID_CMD, f"unknown command 0x{frame[0]:02x}")
        if cmd not in self.accept:
            return self._fail(BleErrorCode.INVALID_CMD, f"{cmd.name} is not accepted here")
        length = frame[1] << 8 | frame[2]
        if length > self.max_message:
            return self._fail(BleErrorCode.INVALID_LEN,
                              f"message of {length} bytes exceeds {self.max_message}")
        data = frame[INIT_HEADER:]
        if len(data) > length:
            return self._fail(BleErrorCode.INVALID_LEN, "more data than the declared length")
        if len(data) == length:
            return Message(cmd, bytes(data))
        self._cmd, self._length, self._seq = cmd, length, 0
        self._data = bytearray(data)
        return None

    def _continuation(self, frame: bytes) -> Message | Failure | None:
        if self._cmd is None:
            return self._fail(BleErrorCode.INVALID_SEQ, "continuation without a message")
        if frame[0] != self._seq:
            return self._fail(BleErrorCode.INVALID_SEQ,
                              f"sequence {frame[0]} where {self._seq} was expected")
        if len(self._data) + len(frame) - 1 > self._length:
            return self._fail(BleErrorCode.INVALID_LEN, "more data than the declared length")
        self._data += frame[1:]
        self._seq = (self._seq + 1) & MAX_SEQ
        if len(self._data) < self._length:
            return None
        message = Message(self._cmd, bytes(self._data))
        self.reset()
        return message

    def _fail(self, code: BleErrorCode, reason: str) -> Failure:
        self.reset()
        return Failure(code, reason)


# --- the band's advertisement ------------------------------------------------------------

#: Bluetooth SIG company identifier in the manufacturer-specific data. 0xFFFF is the value the
#: SIG reserves for tests and for devices without an assigned identifier.
COMPANY_ID = 0xFFFF

#: Layout of the manufacturer-specific data after the (little-endian) company identifier::
#:
#:     VERSION(1) = 0x01 | STATE(1) = BandFlags | SERIAL(ASCII, the rest, e.g. "AAAH-00125")
MANUFACTURER_DATA_VERSION = 0x01


class BandFlags(enum.IntFlag):
    """The advertised state byte. Bits 6-7 are reserved (sent as 0, ignored when read)."""

    ENROLLED = 0x01
    AUTHENTICATED = 0x02
    ON_WRIST = 0x04
    ON_CHARGER = 0x08
    LOCKED_OUT = 0x10
    FIDO_BLE = 0x20


@dataclass(frozen=True)
class BandBeacon:
    """What a band's manufacturer-specific advertising data says."""

    serial: str
    flags: BandFlags


def encode_manufacturer_data(serial: str, flags: BandFlags) -> bytes:
    """The manufacturer-specific data *after* the company identifier."""
    return bytes([MANUFACTURER_DATA_VERSION, int(flags) & 0x3F]) + serial.encode("ascii")


def decode_manufacturer_data(data: bytes) -> BandBeacon | None:
    """Parse :func:`encode_manufacturer_data`; ``None`` for another vendor's or version's data."""
    if len(data) < 3 or data[0] != MANUFACTURER_DATA_VERSION:
        return None
    try:
        serial = data[2:].decode("ascii")
    except UnicodeDecodeError:
        return None
    return BandBeacon(serial, BandFlags(data[1] & 0x3F))
