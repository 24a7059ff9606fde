"""The band management protocol over a bleak connection (docs/protocol.md §3).

:class:`BleManagement` carries a :class:`~nymi_device.management_client.ManagementClient` on the
Management Request (write) and Management Notify (notify) characteristics of a connected
``BleakClient``: one acknowledged write per fragment, in order, and every notification fed to the
client on the event loop's thread (§3.1). It opens the secure session against the CA the host
trusts and the serial the band claims, and gives the ``ble:ADDRESS`` backend
(:class:`~nymi_device.transport.ble.BleBandBackend`) the band's status, event log and live events.

Which CA vouches for band identities (§7.1) is the host's choice: a PEM file or a loaded
certificate given as ``trusted_ca``, else the PEM file named by ``$NYMI_TRUSTED_CA``. Nothing
is trusted by default; for simulated bands the caller passes the simulation authority's root.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator

from bleak import BleakClient
from bleak.backends.characteristic import BleakGATTCharacteristic
from bleak.exc import BleakError
from cryptography import x509

from nymi_device.errors import (
    BandUnreachableError,
    InvalidInputError,
    SecureSessionError,
    StatusCode,
    UnreachableReason,
)
from nymi_device.management_client import ManagementClient, load_trusted_ca
from nymi_device.protocol import fido_ble as fb
from nymi_device.protocol.management import NOTIFY_UUID, REQUEST_UUID, SERVICE_UUID
from nymi_device.protocol.management_session import SessionInfo
from nymi_device.protocol.model import BandEvent

__all__ = [
    "TRUSTED_CA_ENV",
    "BleManagement",
    "TrustedCa",
    "no_trusted_ca",
    "offers_management",
    "resolve_trusted_ca",
]

logger = logging.getLogger(__name__)

#: Environment variable naming the PEM file of the CA that vouches for band identities.
TRUSTED_CA_ENV = "NYMI_TRUSTED_CA"
#: A CA certificate, or the path of its PEM file.
TrustedCa = x509.Certificate | str | os.PathLike[str]
#: GET_EVENT_LOG from here returns no events, only where the log ends (§8.6).
_PAST_THE_END = (1 << 64) - 1


def resolve_trusted_ca(value: TrustedCa | None) -> x509.Certificate | None:
    """The CA to verify band certificates against: ``value``, else ``$NYMI_TRUSTED_CA``."""
    if isinstance(value, x509.Certificate):
        return value
    source = value if value is not None else (os.environ.get(TRUSTED_CA_ENV) or None)
    if source is None:
        return None
    try:
        return load_trusted_ca(os.fspath(source))
    except (OSError, ValueError) as exc:
        raise InvalidInputError(f"trusted CA {os.fspath(source)!r} is not a readable PEM "
                                f"certificate: {exc}") from None


def offers_management(client: BleakClient) -> bool:
    """Whether the connected band serves the Band Management service (§3)."""
    return client.services.get_service(str(SERVICE_UUID)) is not None


def _characteristic(client: BleakClient, uuid: str) -> BleakGATTCharacteristic:
    characteristic = client.services.get_characteristic(uuid)
    if characteristic is None:
        raise BandUnreachableError(
            f"ble:{client.address}: the Band Management service lacks characteristic {uuid}",
            UnreachableReason.UNSUPPORTED)
    return characteristic


class BleManagement:
    """The management client of one BLE connection, with its secure session.

    :param client: a connected ``BleakClient`` whose band offers the service.
    :param trusted_ca: the root that must vouch for the band's identity certificate.
    :param timeout: seconds to wait for each response.

    The characteristics require an encrypted link: an unpaired link is paired by the first
    refused write (our Bumble backend and BlueZ both pair when the band asks).
    """

    def __init__(self, client: BleakClient, trusted_ca: x509.Certificate, *,
                 timeout: float = 5.0) -> None:
        self.ble = client
        self._request = _characteristic(client, str(REQUEST_UUID))
        self._notify = _characteristic(client, str(NOTIFY_UUID))
        self.client = ManagementClient(self._send, trusted_ca, mtu=client.mtu_size,
                                       timeout=timeout)
        self._notifying = False

    @property
    def address(self) -> str:
        return str(self.ble.address)

    async def _send(self, fragment: bytes) -> None:
        try:
            await self.ble.write_gatt_char(self._request, fragment, response=True)
        except BleakError as exc:
            raise BandUnreachableError(f"ble:{self.address}: writing to the band failed: {exc}",
                                       UnreachableReason.TRANSPORT_FAILED) from exc

    def _on_notify(self, _sender: BleakGATTCharacteristic, data: bytearray) -> None:
        self.client.feed(bytes(data))

    async def _claimed_serial(self) -> str | None:
        """The serial in Device Information: the session must prove the same one."""
        if self.ble.services.get_characteristic(fb.SERIAL_NUMBER) is None:
            return None
        raw = await self.ble.read_gatt_char(fb.SERIAL_NUMBER)
        return bytes(raw).decode("utf-8", errors="replace") or None

    async def open(self, expected_serial: str | None = None) -> SessionInfo:
        """Enable notifications (once per connection), then the handshake (§7.2).

        :param expected_serial: the serial the band must prove (default: the one its Device
            Information claims); a band proving another is ``UNTRUSTED_BAND``.
        """
        try:
            if expected_serial is None:
                expected_serial = await self._claimed_serial()
            if not self._notifying:
                await self.ble.start_notify(self._notify, self._on_notify)
                self._notifying = True
        except BleakError as exc:
            raise BandUnreachableError(f"ble:{self.address}: {exc}",
                                       UnreachableReason.TRANSPORT_FAILED) from exc
        self.client.mtu = self.ble.mtu_size
        return await self.client.handshake(expected_serial=expected_serial)

    async def session(self, expected_serial: str | None = None) -> ManagementClient:
        """The client with an open session; a session that ended is opened again."""
        if self.client.session is None:
            if self.client.session_error is not None:
                logger.info("ble:%s: reopening the management session after: %s",
                            self.address, self.client.session_error)
            await self.open(expected_serial)
        return self.client

    async def recent_events(self, last: int) -> list[BandEvent]:
        """The band's ``last`` most recent events, oldest first (GET_EVENT_LOG, §8.6)."""
        if last <= 0:
            return []
        client = await self.session()
        probe = await client.event_log(_PAST_THE_END, limit=1)
        logged = await client.full_event_log(max(probe.first, probe.end - last))
        return [item.event for item in logged][-last:]

    async def events(self) -> AsyncIterator[BandEvent]:
        """Every event the band logs from now on (SUBSCRIBE to all kinds, §8.6, §9)."""
        client = await self.session()
        await client.subscribe()
        async for logged in client.events():
            yield logged.event

    def disconnected(self) -> None:
        """The link dropped: pending requests fail, the session and subscription are gone."""
        self._notifying = False
        self.client.disconnect()

    async def aclose(self) -> None:
        """CLOSE_SESSION if a session is open; ends :meth:`events`."""
        await self.client.aclose()


def no_trusted_ca(address: str) -> SecureSessionError:
    """The error for a host that has no CA to check the band's identity against."""
    return SecureSessionError(
        StatusCode.UNTRUSTED_BAND,
        f"ble:{address}: no CA to verify the band's identity certificate against: pass "
        f"trusted_ca (a PEM file) or set ${TRUSTED_CA_ENV}")
