"""The band management protocol in the band's BLE slot (docs/protocol.md §3).

:func:`management_service_for` gives the radio (:class:`~simulator.frontends.ble.BandRadio`,
:func:`~simulator.frontends.hci_bridge.serve_ble`) the Band Management service of one band: its
UUIDs and, for every connection, a fresh :class:`~simulator.band.management_server.ManagementServer`
with the band's identity. The carrier duties of §3.1 are kept here:

* each written fragment goes to ``receive`` and what it returns is notified at once, in order;
* events pushed between requests are collected *and* notified in one step on the event loop
  (:meth:`~simulator.frontends.ble_gatt.ManagementLink.push_from`), whichever thread changed
  the band, so a response can never overtake an event sealed before it (§3.1, §7.5);
* the server follows the connection's ATT_MTU, and forgets its session when the link drops.
"""

from __future__ import annotations

from nymi_device.protocol.management import NOTIFY_UUID, REQUEST_UUID, SERVICE_UUID
from simulator.band.band import EmulatedBand
from simulator.band.management_identity import (
    IdentityIssuer,
    ManagementIdentity,
    provision_management_identity,
)
from simulator.band.management_server import ManagementServer
from simulator.frontends.ble_gatt import ManagementLink, ManagementService

__all__ = ["BleManagementHandler", "management_service_for"]


class BleManagementHandler:
    """One connection's management endpoint in the BLE slot (a ``ManagementHandler``)."""

    def __init__(self, band: EmulatedBand, identity: ManagementIdentity,
                 link: ManagementLink) -> None:
        self.link = link
        self.server = ManagementServer(band, identity.key, identity.chain, mtu=link.att_mtu,
                                       on_pending=self._on_pending)

    def _on_pending(self) -> None:
        # Called on whichever thread changed the band: take and notify later, together.
        self.link.push_from(self.server.take_pending)

    def receive(self, fragment: bytes) -> list[bytes]:
        """A value written to Management Request; the fragments to notify now, in order."""
        mtu = self.link.att_mtu
        if mtu != self.server.mtu:  # the MTU exchange may come after the first write
            self.server.mtu = mtu
        return self.server.receive(fragment)

    def close(self) -> None:
        """The connection ended: the session and any partial message go (§3)."""
        self.server.close()


def management_service_for(band: EmulatedBand,
                           issuer: IdentityIssuer | None = None) -> ManagementService:
    """The Band Management service of ``band`` for its radio.

    The band's identity (key and certificate, §7.1) is read from its flash once, provisioned
    first if the band has none; every connection gets its own server and session.
    """
    with band.lock:
        identity = provision_management_identity(band.storage, band.identity.serial, issuer)

    def open_handler(link: ManagementLink) -> BleManagementHandler:
        return BleManagementHandler(band, identity, link)

    return ManagementService(SERVICE_UUID, REQUEST_UUID, NOTIFY_UUID, open_handler)
