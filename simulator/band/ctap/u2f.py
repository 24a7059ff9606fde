"""CTAP1/U2F raw messages (FIDO U2F Raw Message Formats v1.2, CTAP 2.1 §10 interoperability).

Requests are ISO 7816-4 command APDUs with CLA 0x00, short or extended length. Registration and
authentication share the CTAP2 credential store: a U2F key handle is a non-discoverable credential
ID bound to the application parameter, so a CTAP2 getAssertion whose rpIdHash equals it finds the
same credential (CTAP 2.1 §10.2).

U2F has no keepalive: when presence is not available at once the authenticator answers
``6985`` (conditions not satisfied) and the platform retries, so presence is polled with a zero
timeout.
"""

from __future__ import annotations

import enum
import struct
from typing import TYPE_CHECKING

from .constants import CoseAlg, CredProtect, WireEnum
from .errors import CtapError
from .wearer import PresenceResult

if TYPE_CHECKING:
    from .context import Core


class U2f:
    """The U2F command set and its status words."""

    @enum.unique
    class INS(WireEnum):
        REGISTER = 0x01
        AUTHENTICATE = 0x02
        VERSION = 0x03

    @enum.unique
    class SW(WireEnum):
        NO_ERROR = 0x9000
        WRONG_LENGTH = 0x6700
        CONDITIONS_NOT_SATISFIED = 0x6985
        WRONG_DATA = 0x6A80
        INCORRECT_P1P2 = 0x6A86
        INS_NOT_SUPPORTED = 0x6D00
        CLA_NOT_SUPPORTED = 0x6E00

    @enum.unique
    class CONTROL(WireEnum):
        CHECK_ONLY = 0x07
        ENFORCE_USER_PRESENCE = 0x03
        DONT_ENFORCE_USER_PRESENCE = 0x08


SW = U2f.SW


def _sw(word: U2f.SW, data: bytes = b"") -> bytes:
    return data + struct.pack(">H", word)


def _parse_apdu(apdu: bytes) -> tuple[int, int, int, int, bytes] | None:
    """(CLA, INS, P1, P2, data) of a short or extended APDU, or None when lengths disagree."""
    if len(apdu) < 4:
        return None
    cla, ins, p1, p2 = apdu[0], apdu[1], apdu[2], apdu[3]
    body = apdu[4:]
    if len(body) == 0 or len(body) == 1:  # case 1, or case 2 short (Le only)
        return cla, ins, p1, p2, b""
    if body[0] != 0:  # short Lc
        lc = body[0]
        rest = body[1:]
        if len(rest) not in (lc, lc + 1):
            return None
        return cla, ins, p1, p2, rest[:lc]
    if len(body) == 3:  # case 2 extended (Le only)
        return cla, ins, p1, p2, b""
    if len(body) < 3:
        return None
    lc = int.from_bytes(body[1:3], "big")
    rest = body[3:]
    # An extended Lc of zero followed by Le (00 0000 0000) is how U2F clients send requests
    # without data; accept it as "no data".
    if len(rest) not in (lc, lc + 2):
        return None
    return cla, ins, p1, p2, rest[:lc]


def process_u2f(core: Core, apdu: bytes) -> bytes:
    """Answer one U2F request APDU with response data and a status word."""
    if not core.features.u2f:
        return _sw(SW.INS_NOT_SUPPORTED)
    parsed = _parse_apdu(apdu)
    if parsed is None:
        return _sw(SW.WRONG_LENGTH)
    cla, ins, p1, _p2, data = parsed
    if cla != 0:
        return _sw(SW.CLA_NOT_SUPPORTED)
    if ins == U2f.INS.VERSION:
        return _sw(SW.NO_ERROR, b"U2F_V2") if not data else _sw(SW.WRONG_LENGTH)
    if ins == U2f.INS.REGISTER:
        return _register(core, data)
    if ins == U2f.INS.AUTHENTICATE:
        return _authenticate(core, p1, data)
    return _sw(SW.INS_NOT_SUPPORTED)


def _present(core: Core) -> bool:
    """Poll for presence (zero timeout): U2F carries no keepalive, the platform retries."""
    user_io = core.user
    return user_io.wearer.wait_for_presence(0.0, user_io.cancel) is PresenceResult.GRANTED


def _register(core: Core, data: bytes) -> bytes:
    """U2F_REGISTER: challenge(32) || application(32) (Raw Message Formats §4)."""
    if len(data) != 64:
        return _sw(SW.WRONG_LENGTH)
    challenge, application = data[:32], data[32:]
    if not core.attestation.basic or not _present(core):
        return _sw(SW.CONDITIONS_NOT_SATISFIED)
    puts: dict[str, bytes] = {}
    try:
        credential = core.creds.generate(
            application, CoseAlg.ES256, CredProtect.UV_OPTIONAL, False, puts
        )
        core.creds.commit_new(credential, puts)
    except CtapError:
        return _sw(SW.CONDITIONS_NOT_SATISFIED)
    point = credential.public_point
    handle = credential.cred_id
    signature = core.attestation.sign(b"\x00" + application + challenge + handle + point)
    cert = core.attestation.certificate_der or b""
    body = b"\x05" + point + bytes((len(handle),)) + handle + cert + signature
    return _sw(SW.NO_ERROR, body)


def _authenticate(core: Core, control: int, data: bytes) -> bytes:
    """U2F_AUTHENTICATE: challenge(32) || application(32) || L || key handle (§5)."""
    if len(data) < 65 or len(data) != 65 + data[64]:
        return _sw(SW.WRONG_LENGTH)
    challenge, application, handle = data[:32], data[32:64], data[65:]
    if control not in (
        U2f.CONTROL.CHECK_ONLY,
        U2f.CONTROL.ENFORCE_USER_PRESENCE,
        U2f.CONTROL.DONT_ENFORCE_USER_PRESENCE,
    ):
        return _sw(SW.INCORRECT_P1P2)
    credential = core.creds.find(handle, application)
    if credential is None or credential.alg != CoseAlg.ES256:
        return _sw(SW.WRONG_DATA)
    if control == U2f.CONTROL.CHECK_ONLY:
        return _sw(SW.CONDITIONS_NOT_SATISFIED)  # "key handle is ours, presence would be needed"
    if core.features.wrist_presence and not core.wearer.is_verified():
        return _sw(SW.CONDITIONS_NOT_SATISFIED)
    user_presence = 0
    if control == U2f.CONTROL.ENFORCE_USER_PRESENCE:
        if not _present(core):
            return _sw(SW.CONDITIONS_NOT_SATISFIED)
        user_presence = 0x01
    counter = core.creds.next_counter(credential)
    prefix = bytes((user_presence,)) + counter.to_bytes(4, "big")
    signature = credential.sign(application + prefix + challenge)
    return _sw(SW.NO_ERROR, prefix + signature)
