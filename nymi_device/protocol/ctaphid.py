"""CTAPHID framing: the packet layer of FIDO over USB HID (CTAP 2.1 §11.2).

Pure functions and frozen dataclasses only: bytes in, objects out. Both the emulated band (which
serves CTAPHID over UDP) and the host side use this module, so the two can never disagree on the
layout of a report.

A *message* (command + payload of up to 7609 bytes) travels as one *initialisation packet*
followed by up to 128 *continuation packets*, each exactly one 64-byte HID report (§11.2.4)::

    init:          CID(4, big-endian) | CMD(1, bit 7 set) | BCNT(2, big-endian) | DATA(57)
    continuation:  CID(4, big-endian) | SEQ(1, 0..0x7F)                          | DATA(59)

Unused bytes at the end of the last packet are zero on the way out and ignored on the way in.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from nymi_device.errors import InvalidInputError
from nymi_device.protocol.keepalive import KeepaliveStatus

__all__ = [
    "BROADCAST_CID",
    "CONT_DATA_SIZE",
    "INIT_DATA_SIZE",
    "MAX_MESSAGE_SIZE",
    "MAX_SEQ",
    "PROTOCOL_VERSION",
    "REBOOT_DATAGRAM",
    "REPORT_SIZE",
    "RESERVED_CID",
    "TYPE_INIT",
    "VENDOR_FIRST",
    "VENDOR_LAST",
    "Capability",
    "Command",
    "ContinuationPacket",
    "HidErrorCode",
    "InitPacket",
    "InitResponse",
    "KeepaliveStatus",
    "Packet",
    "command_name",
    "decode_packet",
    "encode_message",
    "error_report",
    "keepalive_report",
]

# fmt: off
REPORT_SIZE      = 64                    # bytes in one HID report (full-speed USB)
INIT_DATA_SIZE   = REPORT_SIZE - 7       # 57 payload bytes in an initialisation packet
CONT_DATA_SIZE   = REPORT_SIZE - 5       # 59 payload bytes in a continuation packet
MAX_SEQ          = 0x7F                  # continuation sequence numbers run 0..127
MAX_MESSAGE_SIZE = INIT_DATA_SIZE + (MAX_SEQ + 1) * CONT_DATA_SIZE   # 7609 (§11.2.4)
TYPE_INIT        = 0x80                  # bit 7 of byte 4 marks an initialisation packet
BROADCAST_CID    = 0xFFFFFFFF            # only CTAPHID_INIT may use it (§11.2.3)
RESERVED_CID     = 0x00000000            # never a valid channel
PROTOCOL_VERSION = 2                     # CTAPHID protocol version reported by INIT
# fmt: on

#: The datagram that, by the convention of the public FIDO2 simulator test tooling, power-cycles a
#: CTAPHID-over-UDP authenticator. It is not a CTAPHID packet and gets no reply.
REBOOT_DATAGRAM = bytes.fromhex(
    "ac1052ca95e569de69e02ebff333485f13f9b2da34c5a8a340526697a9ab2e0b"
    "394d8d04973c134005be1a0140bff6045bb26eb77a73eaa47813f6b49a7250dc"
)


class Command(enum.IntEnum):
    """CTAPHID commands, without the TYPE_INIT bit (CTAP 2.1 §11.2.9)."""

    PING = 0x01
    MSG = 0x03
    LOCK = 0x04
    INIT = 0x06
    WINK = 0x08
    CBOR = 0x10
    CANCEL = 0x11
    KEEPALIVE = 0x3B
    ERROR = 0x3F


#: First and last command of the vendor-specific range (§11.2.9.2).
VENDOR_FIRST = 0x40
VENDOR_LAST = 0x7F


def command_name(cmd: int) -> str:
    """A readable name for a raw command byte (with or without the TYPE_INIT bit)."""
    value = cmd & ~TYPE_INIT
    try:
        return Command(value).name
    except ValueError:
        if VENDOR_FIRST <= value <= VENDOR_LAST:
            return f"VENDOR_0x{value:02X}"
        return f"UNKNOWN_0x{value:02X}"


class HidErrorCode(enum.IntEnum):
    """Payload byte of a CTAPHID_ERROR response (CTAP 2.1 §11.2.9.1.6)."""

    INVALID_CMD = 0x01
    INVALID_PAR = 0x02
    INVALID_LEN = 0x03
    INVALID_SEQ = 0x04
    MSG_TIMEOUT = 0x05
    CHANNEL_BUSY = 0x06
    LOCK_REQUIRED = 0x0A
    INVALID_CHANNEL = 0x0B
    OTHER = 0x7F

    @classmethod
    def _missing_(cls, value: object) -> HidErrorCode:
        # An unknown code from a newer peer must not crash an older one.
        return cls.OTHER


class Capability(enum.IntFlag):
    """Capability flags in the CTAPHID_INIT response (§11.2.9.1.3)."""

    NONE = 0x00
    WINK = 0x01
    CBOR = 0x04
    NMSG = 0x08  # the device does NOT implement CTAPHID_MSG


@dataclass(frozen=True, slots=True)
class InitPacket:
    """First packet of a message. ``cmd`` is the 7-bit command; ``data`` is all 57 data bytes."""

    cid: int
    cmd: int
    bcnt: int
    data: bytes

    @property
    def payload(self) -> bytes:
        """The part of ``data`` that belongs to the message (at most ``bcnt`` bytes)."""
        return self.data[: self.bcnt]


@dataclass(frozen=True, slots=True)
class ContinuationPacket:
    """A follow-on packet of a message; ``data`` is all 59 data bytes."""

    cid: int
    seq: int
    data: bytes


Packet = InitPacket | ContinuationPacket


def decode_packet(report: bytes) -> Packet:
    """Parse one 64-byte report.

    :raises InvalidInputError: if ``report`` is not exactly :data:`REPORT_SIZE` bytes long.
    """
    if len(report) != REPORT_SIZE:
        raise InvalidInputError(
            f"a CTAPHID report is {REPORT_SIZE} bytes, got {len(report)}"
        )
    cid, kind = struct.unpack_from(">IB", report)
    if kind & TYPE_INIT:
        (bcnt,) = struct.unpack_from(">H", report, 5)
        return InitPacket(cid=cid, cmd=kind & ~TYPE_INIT, bcnt=bcnt, data=bytes(report[7:]))
    return ContinuationPacket(cid=cid, seq=kind, data=bytes(report[5:]))


def encode_message(cid: int, cmd: int, payload: bytes = b"") -> list[bytes]:
    """Fragment one message into 64-byte reports (§11.2.4).

    :param cid: channel id, 0..0xFFFFFFFF.
    :param cmd: 7-bit command (the TYPE_INIT bit is added here).
    :raises InvalidInputError: if the payload exceeds :data:`MAX_MESSAGE_SIZE` or the channel or
        command is out of range.
    """
    if not 0 <= cid <= 0xFFFFFFFF:
        raise InvalidInputError(f"channel id out of range: {cid}")
    if not 0 <= cmd <= 0x7F:
        raise InvalidInputError(f"command out of range: {cmd}")
    if len(payload) > MAX_MESSAGE_SIZE:
        raise InvalidInputError(
            f"CTAPHID message of {len(payload)} bytes exceeds {MAX_MESSAGE_SIZE}"
        )
    head = struct.pack(">IBH", cid, TYPE_INIT | cmd, len(payload))
    reports = [(head + payload[:INIT_DATA_SIZE]).ljust(REPORT_SIZE, b"\0")]
    offset = INIT_DATA_SIZE
    seq = 0
    while offset < len(payload):
        chunk = payload[offset : offset + CONT_DATA_SIZE]
        reports.append((struct.pack(">IB", cid, seq) + chunk).ljust(REPORT_SIZE, b"\0"))
        offset += CONT_DATA_SIZE
        seq += 1
    return reports


def error_report(cid: int, code: HidErrorCode | int) -> bytes:
    """The single report of a CTAPHID_ERROR response carrying ``code``."""
    return encode_message(cid, Command.ERROR, bytes([int(code)]))[0]


def keepalive_report(cid: int, status: KeepaliveStatus | int) -> bytes:
    """The single report of a CTAPHID_KEEPALIVE carrying ``status``."""
    return encode_message(cid, Command.KEEPALIVE, bytes([int(status)]))[0]


@dataclass(frozen=True, slots=True)
class InitResponse:
    """Payload of a CTAPHID_INIT response (17 bytes, §11.2.9.1.3)."""

    nonce: bytes
    cid: int
    protocol_version: int = PROTOCOL_VERSION
    device_version: tuple[int, int, int] = (0, 0, 0)
    capabilities: int = 0

    _FORMAT = ">8sIBBBBB"
    SIZE = 17

    def encode(self) -> bytes:
        if len(self.nonce) != 8:
            raise InvalidInputError("an INIT nonce is 8 bytes")
        major, minor, build = self.device_version
        return struct.pack(
            self._FORMAT,
            self.nonce,
            self.cid,
            self.protocol_version,
            major,
            minor,
            build,
            self.capabilities,
        )

    @classmethod
    def decode(cls, payload: bytes) -> InitResponse:
        """Parse an INIT response payload; extra trailing bytes are ignored.

        :raises InvalidInputError: if the payload is shorter than 17 bytes.
        """
        if len(payload) < cls.SIZE:
            raise InvalidInputError(f"an INIT response is {cls.SIZE} bytes, got {len(payload)}")
        nonce, cid, version, major, minor, build, caps = struct.unpack_from(cls._FORMAT, payload)
        return cls(
            nonce=nonce,
            cid=cid,
            protocol_version=version,
            device_version=(major, minor, build),
            capabilities=caps,
        )
