"""The SEOS profile: a selectable applet with HID's SEOS AID and a per-band credential container.

**What is not reproduced.** HID SEOS is proprietary: its secure messaging, mutual authentication
(GENERAL AUTHENTICATE), key diversification and the contents of a real SEOS credential are not
public and are **not** modelled. A real SEOS reader cannot authenticate this applet, and nothing
here is a usable access-control credential.

**What is modelled** is what the band's flows depend on (DOMAIN.md §3.3, §5):

* the applet is there: SELECT with the SEOS AID ``A0000004400001010001`` succeeds on fixtures
  with ``capabilities.seos`` and finds nothing (``6A82``) on the others;
* it presents a per-band credential container bound to the enrolled user: SELECT answers
  ``6F { 84 <AID>, A5 { C0 01 <format 01>, C1 10 <container id>, C2 20 <user binding> } }``,
  where the container id is derived from the band's device identity (it stays with the band)
  and the user binding from the container id and the enrolled user's template (it changes when
  the band is wiped and enrolled again);
* it refuses (``6982``) while the band is not authenticated on the wrist;
* every other command gets ``6D00``, because the proprietary protocol behind it is not there.

Enterprise rules treat SEOS bands specially (self-service re-enrollment only on one's own SEOS
band): that is the enterprise server's business; this applet only lets a reader see the profile.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from nymi_device.protocol.apdu import AID_SEOS, SW, CommandApdu, ResponseApdu, tlv

from .card_os import Applet, reply

__all__ = ["SeosApplet", "seos_container_id", "seos_user_binding"]

CONTAINER_FORMAT = 0x01
TAG_FORMAT = 0xC0
TAG_CONTAINER_ID = 0xC1
TAG_USER_BINDING = 0xC2


def seos_container_id(device_id: str) -> bytes:
    """The 16-byte container id of the band with this device id."""
    return hashlib.sha256(b"nymi-seos-container\x00" + device_id.encode()).digest()[:16]


def seos_user_binding(container_id: bytes, template: str) -> bytes:
    """The 32-byte binding of a container to one enrolled user (their opaque template)."""
    return hashlib.sha256(b"nymi-seos-binding\x00" + container_id + template.encode()).digest()


class SeosApplet(Applet):
    """SEOS presence and a per-band container; no HID cryptography.

    :param container_id: the band's container id (:func:`seos_container_id`).
    :param verified: whether the band is authenticated on the wrist now.
    :param template: the enrolled user's template, or ``None`` when nobody is enrolled.
    """

    aid = AID_SEOS
    name = "seos"

    def __init__(
        self, container_id: bytes, verified: Callable[[], bool],
        template: Callable[[], str | None],
    ) -> None:
        self.container_id = bytes(container_id)
        self._verified = verified
        self._template = template

    def container(self) -> bytes | None:
        """The container's data objects, or ``None`` when no user is enrolled."""
        template = self._template()
        if template is None:
            return None
        return (tlv(TAG_FORMAT, bytes((CONTAINER_FORMAT,)))
                + tlv(TAG_CONTAINER_ID, self.container_id)
                + tlv(TAG_USER_BINDING, seos_user_binding(self.container_id, template)))

    def select(self, command: CommandApdu) -> ResponseApdu:
        if not self._verified():
            return reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        container = self.container()
        if container is None:
            return reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        return reply(SW.OK, tlv(0x6F, tlv(0x84, self.aid) + tlv(0xA5, container)))

    def process(self, command: CommandApdu) -> ResponseApdu:
        if not self._verified():
            return reply(SW.SECURITY_STATUS_NOT_SATISFIED)
        return reply(SW.INS_NOT_SUPPORTED)
