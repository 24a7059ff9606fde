"""The Secure NFC identity applet: the stable per-band identifier an access manager binds to a user.

Evidian-style enterprise access management (DOMAIN.md §5) keeps, per user, an "RFID" entry and a
"Wearable" entry for the band. A reader gets the first from the anticollision: the UID, read with
PC/SC GET DATA ``FF CA 00 00 00``, which the card OS answers for every band. This applet gives the
second: the band's own identifier, the "internal identifier" a first tap binds to whoever types
their credentials. How the real band's Secure NFC applet is addressed is not public, so the AID
is ours (:data:`~nymi_device.protocol.apdu.AID_NYMI_SECURE_NFC`, ``F04E594D49534E464301``: a
proprietary, unregistered AID spelling ``NYMISNFC`` + version 01).

Commands:

* ``00 A4 04 00 0A F04E594D49534E464301 00`` (SELECT): ``9000`` with the FCI template
  ``6F { 84 <AID>, A5 { 50 "Nymi Secure NFC", C1 <identifier, 16 bytes> } }``;
* ``00 CA 00 C1 00`` (GET DATA, tag ``C1``): ``C1 10 <identifier>``; another tag → ``6A88``.

Both answer ``6982`` (security status not satisfied) while the band is not authenticated on the
wrist: a band that is off the wrist or not yet verified does not identify its wearer.

The identifier is derived from the band's device identity, so it is stable across taps, restarts
and Delete User Data; a re-enrollment therefore needs the old access-manager entry removed first,
as the Secure NFC procedure prescribes (KB 40090770816148).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from nymi_device.protocol.apdu import AID_NYMI_SECURE_NFC, SW, CommandApdu, ResponseApdu, tlv

from .card_os import Applet, reply

__all__ = ["SecureNfcApplet", "secure_nfc_identifier"]

LABEL = b"Nymi Secure NFC"
TAG_IDENTIFIER = 0xC1
INS_GET_DATA = 0xCA


def secure_nfc_identifier(device_id: str) -> bytes:
    """The 16-byte Secure NFC identifier of the band with this device id."""
    return hashlib.sha256(b"nymi-secure-nfc-identifier\x00" + device_id.encode()).digest()[:16]


class SecureNfcApplet(Applet):
    """Presents the band's Secure NFC identifier to an authenticated wearer's reader.

    :param identifier: the band's identifier (:func:`secure_nfc_identifier`).
    :param verified: whether the band is authenticated on the wrist now.
    """

    aid = AID_NYMI_SECURE_NFC
    name = "secure-nfc"

    def __init__(self, identifier: bytes, verified: Callable[[], bool]) -> None:
        self.identifier = bytes(identifier)
        self._verified = verified

    def fci(self) -> bytes:
        proprietary = tlv(0x50, LABEL) + tlv(TAG_IDENTIFIER, self.identifier)
        return tlv(0x6F, tlv(0x84, self.aid) + tlv(0xA5, proprietary))

    def select(self, command: CommandApdu) -> ResponseApdu:
        if not self._verified():
            return reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        return reply(SW.OK, self.fci())

    def process(self, command: CommandApdu) -> ResponseApdu:
        if command.proprietary:
            return reply(SW.CLA_NOT_SUPPORTED)
        if command.ins != INS_GET_DATA:
            return reply(SW.INS_NOT_SUPPORTED)
        if not self._verified():
            return reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        if (command.p1 << 8 | command.p2) != TAG_IDENTIFIER:
            return reply(SW.REFERENCED_DATA_NOT_FOUND)
        if command.data:
            return reply(SW.WRONG_LENGTH)
        return reply(SW.OK, tlv(TAG_IDENTIFIER, self.identifier))
