"""The band's NFC side: a card OS with the applets its fixture has.

:func:`build_card_os` is the one entry point a front end needs::

    card = build_card_os(live.band, live.authenticator, verified=live.wearer.is_verified)
    frontend = VpcdFrontend(card, slot=0)      # simulator.frontends.vpcd
    await frontend.tap()

Which applets a band carries follows its fixture: FIDO when it has a CTAP authenticator (and one
is passed), Secure NFC with ``capabilities.secure_nfc``, SEOS with ``capabilities.seos``. The UID
(``FF CA 00 00 00``) is the band's stable ``nfc_id`` and is answered for every band.
"""

from __future__ import annotations

from collections.abc import Callable

from simulator.band.band import EmulatedBand

from .card_os import Applet, CardOS
from .fido_applet import CtapAuthenticator, FidoApplet, never_waits_for_wearer
from .secure_nfc_applet import SecureNfcApplet, secure_nfc_identifier
from .seos_applet import SeosApplet, seos_container_id

__all__ = [
    "NYMI_HISTORICAL_BYTES",
    "Applet",
    "CardOS",
    "FidoApplet",
    "SecureNfcApplet",
    "SeosApplet",
    "build_card_os",
]

#: The ATS historical bytes of a simulated band, in compact-TLV form (ISO/IEC 7816-4 §8.1.1):
#: category ``80``; card capabilities ``73 C0 21 C0`` (selection by full and partial DF name,
#: command chaining, extended Lc/Le); issuer data ``54`` "Nymi". The real band's ATS is not public.
NYMI_HISTORICAL_BYTES = bytes.fromhex("8073C021C0") + b"\x54Nymi"


def build_card_os(
    band: EmulatedBand,
    authenticator: CtapAuthenticator | None = None,
    *,
    verified: Callable[[], bool] | None = None,
    inline_wait_s: float = 0.05,
) -> CardOS:
    """The card OS of ``band``, with the applets its fixture has.

    :param authenticator: the band's CTAP authenticator; without one there is no FIDO applet.
    :param verified: whether the wearer is verified now (default: the band is authenticated on
        the wrist). Pass the wearer bridge's ``is_verified`` to honour its auto-presence mode.
    :param inline_wait_s: see :class:`FidoApplet`.
    """
    fixture = band.fixture

    def authenticated() -> bool:
        with band.lock:
            return band.is_authenticated

    def template() -> str | None:
        with band.lock:
            return band.user.template

    check = verified or authenticated
    applets: list[Applet] = []
    ctap = fixture.ctap
    if authenticator is not None and ctap is not None:
        u2f = ctap.u2f and "U2F_V2" in ctap.versions  # SELECT then answers U2F_V2
        # A model that never waits for the wearer is answered in the caller's thread.
        inline = never_waits_for_wearer if ctap.never_waits_for_wearer else None
        applets.append(FidoApplet(authenticator, u2f=u2f, inline_wait_s=inline_wait_s,
                                  inline=inline))
    if fixture.capabilities.secure_nfc:
        applets.append(SecureNfcApplet(secure_nfc_identifier(band.identity.device_id), check))
    if fixture.capabilities.seos:
        applets.append(SeosApplet(seos_container_id(band.identity.device_id), check, template))
    return CardOS(applets, uid=bytes.fromhex(band.identity.nfc_id),
                  historical_bytes=NYMI_HISTORICAL_BYTES)
