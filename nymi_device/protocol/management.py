"""The band management protocol: GATT UUIDs, commands and the message envelope.

docs/protocol.md is the reference; sections are cited as §n. Pure: bytes in, objects out, shared
by the host (:mod:`nymi_device.management_client`) and the emulated band
(:mod:`simulator.band.management_server`), so the two never disagree on a message.

* §3 — :data:`SERVICE_UUID`, :data:`REQUEST_UUID` (write, host → band) and :data:`NOTIFY_UUID`
  (notify, band → host), all in one 128-bit base (:func:`uuid_for`).
* §5 — the envelope: :class:`Request`, :class:`Response`, :class:`Event` and :class:`Record`,
  encoded by :func:`encode_message` and decoded, strictly, by :func:`decode_message`.
* §8 — :class:`Command`. The bodies of the commands are in
  :mod:`nymi_device.protocol.management_bodies`, framing in
  :mod:`~nymi_device.protocol.management_frames`, the secure session in
  :mod:`~nymi_device.protocol.management_session`.
"""

from __future__ import annotations

import enum
import uuid
from dataclasses import dataclass, field

from nymi_device.errors import InvalidInputError, StatusCode
from nymi_device.protocol.management_cbor import CborError, decode, encode
from nymi_device.protocol.management_frames import MAX_MESSAGE

__all__ = [
    "MAX_MESSAGE",
    "MAX_PLAINTEXT",
    "MAX_REQUEST_ID",
    "NOTIFY_UUID",
    "PLAIN_COMMANDS",
    "PROTOCOL_VERSION",
    "RECORD_OVERHEAD",
    "REQUEST_UUID",
    "SERVICE_UUID",
    "SUPPORTED_VERSIONS",
    "UUID_BASE",
    "Body",
    "Command",
    "Event",
    "Key",
    "Message",
    "MessageError",
    "MessageKind",
    "Record",
    "Request",
    "Response",
    "decode_message",
    "encode_message",
    "uuid_for",
]

# -- §3 GATT ------------------------------------------------------------------------------------

#: The base of every UUID of the service: ``xxxx`` is the 16-bit slot (§3).
UUID_BASE = "f414xxxx-54d0-4a23-8354-fb91d034adec"


def uuid_for(slot: int) -> uuid.UUID:
    """The 128-bit UUID of ``slot`` in the service's base (§3)."""
    if not 0 <= slot <= 0xFFFF:
        raise InvalidInputError(f"a UUID slot is 16 bits, got {slot:#x}")
    return uuid.UUID(UUID_BASE.replace("xxxx", f"{slot:04x}"))


# fmt: off
SERVICE_UUID = uuid_for(0x0001)   # Band Management service
REQUEST_UUID = uuid_for(0x0002)   # Management Request: write / write without response, host → band
NOTIFY_UUID  = uuid_for(0x0003)   # Management Notify: notify, band → host
# fmt: on

# -- §6 versions ------------------------------------------------------------------------------

PROTOCOL_VERSION = 1
#: Every version this implementation speaks, lowest first.
SUPPORTED_VERSIONS: tuple[int, ...] = (1,)
MAX_REQUEST_ID = 0xFFFFFFFF
#: Bytes a record adds around its plaintext: the envelope (at most 24) and the 16-byte tag.
RECORD_OVERHEAD = 40
#: The largest inner message that still fits in one record of MAX_MESSAGE bytes (§7.4, §12).
MAX_PLAINTEXT = MAX_MESSAGE - RECORD_OVERHEAD



# -- §8 commands ------------------------------------------------------------------------------


@enum.unique
class Command(enum.IntEnum):
    """Management commands (§8)."""

    HELLO = 0x01
    GET_INFO = 0x02
    GET_STATUS = 0x03
    CLOSE_SESSION = 0x04
    ENROLL_SETUP_CODE = 0x10
    ENROLL_START_CAPTURE = 0x11
    ENROLL_SET_LABEL = 0x12
    ENROLL_ADD_CORPORATE_AUTHENTICATOR = 0x13
    ENROLL_SET_POLICY = 0x14
    ENROLL_FINISH = 0x15
    UPDATE_POLICY = 0x18
    CORPORATE_LOGIN = 0x19
    GET_EVENT_LOG = 0x20
    SUBSCRIBE = 0x21
    UNSUBSCRIBE = 0x22
    GET_DELETE_USER_DATA_STATUS = 0x30


#: The commands served without a session (§7.6).
PLAIN_COMMANDS = frozenset({Command.HELLO, Command.GET_INFO})


# -- §5 the envelope --------------------------------------------------------------------------


@enum.unique
class MessageKind(enum.IntEnum):
    REQUEST = 1
    RESPONSE = 2
    EVENT = 3
    RECORD = 4


@enum.unique
class Key(enum.IntEnum):
    """Keys of the envelope map (§5.2)."""

    VERSION = 0
    KIND = 1
    REQUEST_ID = 2
    COMMAND = 3
    STATUS = 4
    BODY = 5
    DETAIL = 6
    SEQUENCE = 7
    CIPHERTEXT = 8


Body = dict[int, object]


class MessageError(InvalidInputError):
    """A message that breaks §5 (or a body that breaks §8): the status to answer with."""

    def __init__(self, status: StatusCode, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


@dataclass(frozen=True)
class Request:
    request_id: int
    command: int
    body: Body = field(default_factory=dict)
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Response:
    request_id: int
    command: int
    status: int = StatusCode.OK
    body: Body = field(default_factory=dict)
    detail: str | None = None
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Event:
    body: Body
    version: int = PROTOCOL_VERSION


@dataclass(frozen=True)
class Record:
    sequence: int
    ciphertext: bytes
    version: int = PROTOCOL_VERSION


Message = Request | Response | Event | Record


def encode_message(message: Message) -> bytes:
    """The deterministic CBOR encoding of ``message`` (§5.1, §5.2)."""
    env: dict[int, object] = {Key.VERSION: message.version}
    if isinstance(message, Request):
        env[Key.KIND] = MessageKind.REQUEST
        env[Key.REQUEST_ID] = message.request_id
        env[Key.COMMAND] = message.command
        if message.body:
            env[Key.BODY] = message.body
    elif isinstance(message, Response):
        env[Key.KIND] = MessageKind.RESPONSE
        env[Key.REQUEST_ID] = message.request_id
        env[Key.COMMAND] = message.command
        env[Key.STATUS] = int(message.status)
        if message.body:
            env[Key.BODY] = message.body
        if message.detail:
            env[Key.DETAIL] = message.detail
    elif isinstance(message, Event):
        env[Key.KIND] = MessageKind.EVENT
        env[Key.BODY] = message.body
    else:
        env[Key.KIND] = MessageKind.RECORD
        env[Key.SEQUENCE] = message.sequence
        env[Key.CIPHERTEXT] = message.ciphertext
    return encode({int(k): v for k, v in env.items()})


def decode_message(data: bytes) -> Message:
    """The message in ``data``; :class:`MessageError` (``INVALID_MESSAGE``) when it breaks §5.

    The version is only checked to be an unsigned integer: which versions to accept is the
    receiver's decision (§6).
    """
    try:
        env = decode(data)
    except CborError as exc:
        raise MessageError(StatusCode.INVALID_MESSAGE, f"not a protocol message: {exc}") from None
    if not isinstance(env, dict) or not all(isinstance(k, int) for k in env):
        raise MessageError(StatusCode.INVALID_MESSAGE, "a message is a map with integer keys")
    version = _uint(env, Key.VERSION, 0xFF)
    kind = _uint(env, Key.KIND, 0xFF)
    if kind == MessageKind.REQUEST:
        request_id = _uint(env, Key.REQUEST_ID, MAX_REQUEST_ID)
        if request_id == 0:
            raise MessageError(StatusCode.INVALID_MESSAGE, "request id 0 is reserved")
        return Request(request_id, _uint(env, Key.COMMAND, 0xFF), _body(env), version)
    if kind == MessageKind.RESPONSE:
        detail = env.get(Key.DETAIL)
        if detail is not None and not isinstance(detail, str):
            raise MessageError(StatusCode.INVALID_MESSAGE, "detail must be text")
        return Response(
            _uint(env, Key.REQUEST_ID, MAX_REQUEST_ID),
            _uint(env, Key.COMMAND, 0xFF),
            _uint(env, Key.STATUS, 0xFF),
            _body(env),
            detail,
            version,
        )
    if kind == MessageKind.EVENT:
        return Event(_body(env), version)
    if kind == MessageKind.RECORD:
        ciphertext = env.get(Key.CIPHERTEXT)
        if not isinstance(ciphertext, bytes) or len(ciphertext) < 16:
            raise MessageError(StatusCode.INVALID_MESSAGE, "a record's ciphertext is >= 16 bytes")
        return Record(_uint(env, Key.SEQUENCE, (1 << 64) - 1), ciphertext, version)
    raise MessageError(StatusCode.INVALID_MESSAGE, f"unknown message kind {kind}")


def _uint(env: dict[int | str, object], key: Key, limit: int) -> int:
    value = env.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= limit:
        raise MessageError(
            StatusCode.INVALID_MESSAGE, f"envelope key {int(key)} ({key.name.lower()}) must be "
            f"an integer 0..{limit}"
        )
    return value


def _body(env: dict[int | str, object]) -> Body:
    body = env.get(Key.BODY, {})
    if not isinstance(body, dict) or not all(
        isinstance(k, int) and not isinstance(k, bool) for k in body
    ):
        raise MessageError(StatusCode.INVALID_MESSAGE, "a body is a map with integer keys")
    return {int(k): v for k, v in body.items()}
