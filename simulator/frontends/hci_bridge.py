"""The virtual radio for other processes: a host-side controller on the radio, as HCI over TCP.

Another process reaches the simulated bands exactly as it would reach a USB dongle: it opens a
Bumble host on ``tcp-client:127.0.0.1:PORT`` (H4 packets over TCP, the framing of Bumble's
``tcp-server``/``tcp-client`` transports) and finds a controller there whose radio is the
:class:`~.ble_radio.VirtualRadio` the bands advertise on::

    server = await serve_ble([live.band for live in bands], port=9001, btsnoop="ble.btsnoop")
    # elsewhere: BleakScanner(backend=BleakScannerBumble, hci="tcp-client:127.0.0.1:9001")
    await server.close()

One client at a time, like a dongle: a second connection waits (up to ``queue_wait`` seconds,
so back-to-back processes do not race the first one's socket teardown) and is refused if the
first is still there. When the client goes away its links are dropped and its scan stopped, so
the bands advertise again for the next one. ``btsnoop`` writes every HCI packet between the
client and this controller to a BTSnoop file (Bumble's ``BtSnooper``), which Wireshark and
``tshark -r`` open.

Bumble's own ``tcp-server`` transport cannot say when its client leaves and lets concurrent
clients share one socket; the server here uses Bumble's H4 :class:`PacketParser` on a plain
asyncio server to get both right.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import BinaryIO, Protocol

from bumble import hci
from bumble.snoop import BtSnooper, Snooper
from bumble.transport.common import PacketParser

from simulator.band.band import EmulatedBand
from simulator.frontends.ble import BandRadio
from simulator.frontends.ble_gatt import BleAuthenticator, ManagementService
from simulator.frontends.ble_radio import RadioController, VirtualRadio

__all__ = ["BleServer", "HciBridge", "SupportsLiveBand", "serve_ble"]

logger = logging.getLogger(__name__)

DEFAULT_HOST = "127.0.0.1"


class HciBridge:
    """A virtual controller on ``radio`` whose host is whoever connects to a TCP port.

    :param radio: the radio the bands are on.
    :param host: address to bind (loopback by default: the radio is not for the network).
    :param port: TCP port; 0 picks a free one (see :attr:`port` after :meth:`start`).
    :param btsnoop: a file to write a BTSnoop capture of the HCI traffic to.
    :param queue_wait: seconds a second client waits for the first to leave before refusal.
    """

    def __init__(
        self,
        radio: VirtualRadio,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        btsnoop: str | Path | None = None,
        queue_wait: float = 2.0,
    ) -> None:
        self.radio = radio
        self._bind = (host, port)
        self.btsnoop = Path(btsnoop) if btsnoop is not None else None
        self.queue_wait = queue_wait
        self.controller: RadioController | None = None
        self._server: asyncio.Server | None = None
        self._client: asyncio.Transport | None = None
        self._waiting: list[_HciProtocol] = []
        self._snoop_file: BinaryIO | None = None
        self._snooper: Snooper | None = None
        #: How many clients have connected so far.
        self.clients_served = 0

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            return self._bind[1]
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def moniker(self) -> str:
        """The Bumble transport moniker a client opens: ``tcp-client:HOST:PORT``."""
        return f"tcp-client:{self._bind[0]}:{self.port}"

    @property
    def has_client(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        """Bind the port and put the host-side controller on the radio.

        :raises OSError: if the port cannot be bound.
        """
        if self._server is not None:
            return
        if self.btsnoop is not None:
            self._snoop_file = self.btsnoop.open("wb")
            self._snooper = BtSnooper(self._snoop_file)
        self.controller = self.radio.new_controller("hci-bridge", host_sink=_ToClient(self))
        loop = asyncio.get_running_loop()
        try:
            self._server = await loop.create_server(
                lambda: _HciProtocol(self), host=self._bind[0], port=self._bind[1])
        except BaseException:
            self._teardown()
            raise
        logger.info("virtual radio on HCI over TCP: %s", self.moniker)

    async def close(self) -> None:
        for waiting in self._waiting:
            waiting.refuse()
        self._waiting.clear()
        if self._client is not None:
            self._client.close()
            self._client_gone(None)
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        self._teardown()

    def _teardown(self) -> None:
        if self.controller is not None:
            self.controller.detach()
            self.controller = None
        if self._snoop_file is not None:
            self._snoop_file.close()
            self._snoop_file = None
            self._snooper = None

    async def __aenter__(self) -> HciBridge:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    # -- the client ----------------------------------------------------------------------------

    def _client_arrived(self, protocol: _HciProtocol) -> None:
        if self.controller is None:
            protocol.refuse()
        elif self._client is None:
            self._attach(protocol)
        else:
            logger.info("a second HCI client waits for the radio")
            self._waiting.append(protocol)
            asyncio.get_running_loop().call_later(self.queue_wait, self._give_up, protocol)

    def _attach(self, protocol: _HciProtocol) -> None:
        self._client = protocol.transport
        self.clients_served += 1
        logger.info("HCI client connected from %s",
                    protocol.transport.get_extra_info("peername"))
        protocol.accept()

    def _give_up(self, protocol: _HciProtocol) -> None:
        if protocol in self._waiting:
            self._waiting.remove(protocol)
            logger.warning("refusing an HCI client: the radio is in use by another one")
            protocol.refuse()

    def _client_gone(self, protocol: _HciProtocol | None = None) -> None:
        if protocol is not None:  # one that never had the radio
            if protocol in self._waiting:
                self._waiting.remove(protocol)
            return
        if self._client is None:
            return
        self._client = None
        logger.info("HCI client disconnected")
        if self.controller is not None:
            # Whatever the client left behind (links, a scan, a pending connection) goes, as
            # when a dongle is unplugged; the next client starts from a reset controller.
            self.controller.drop_links(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR, notify=False)
            self.controller.on_hci_reset_command(hci.HCI_Reset_Command())
        if self._waiting:
            self._attach(self._waiting.pop(0))

    def _from_client(self, packet: bytes) -> None:
        if self._snooper is not None:
            self._snoop(packet, Snooper.Direction.HOST_TO_CONTROLLER)
        if self.controller is not None:
            self.controller.on_packet(packet)

    def _to_client(self, packet: bytes) -> None:
        if self._client is None:
            return
        if self._snooper is not None:
            self._snoop(packet, Snooper.Direction.CONTROLLER_TO_HOST)
        self._client.write(packet)

    def _snoop(self, packet: bytes, direction: Snooper.Direction) -> None:
        assert self._snooper is not None and self._snoop_file is not None
        self._snooper.snoop(packet, direction)
        self._snoop_file.flush()


class _ToClient:
    def __init__(self, bridge: HciBridge) -> None:
        self._bridge = bridge

    def on_packet(self, packet: bytes) -> None:
        self._bridge._to_client(packet)


class _FromClient:
    def __init__(self, bridge: HciBridge) -> None:
        self._bridge = bridge

    def on_packet(self, packet: bytes) -> None:
        self._bridge._from_client(packet)


class _HciProtocol(asyncio.Protocol):
    """One TCP client; its bytes are held back until it has the radio."""

    def __init__(self, bridge: HciBridge) -> None:
        self._bridge = bridge
        self._parser = PacketParser(_FromClient(bridge))
        self._accepted = False
        self._held = bytearray()
        self.transport: asyncio.Transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._bridge._client_arrived(self)

    def accept(self) -> None:
        self._accepted = True
        held, self._held = bytes(self._held), bytearray()
        if held:
            self.data_received(held)

    def refuse(self) -> None:
        self._held.clear()
        self.transport.close()

    def data_received(self, data: bytes) -> None:
        if not self._accepted:
            self._held += data
            return
        try:
            self._parser.feed_data(data)
        except Exception as exc:  # a broken client must not take the radio down
            logger.warning("invalid HCI data from the client (%s); dropping it", exc)
            self._parser.reset()

    def connection_lost(self, exc: Exception | None) -> None:
        self._bridge._client_gone(None if self._accepted else self)


# --- serving a set of bands ---------------------------------------------------------------------

class SupportsLiveBand(Protocol):
    """A band with its FIDO2 authenticator wired (e.g. :class:`simulator.serve.LiveBand`)."""

    @property
    def band(self) -> EmulatedBand: ...

    @property
    def authenticator(self) -> BleAuthenticator: ...


class BleServer:
    """Bands on a virtual radio, reachable by other processes through :attr:`bridge`."""

    def __init__(self, radio: VirtualRadio, bridge: HciBridge, bands: Sequence[BandRadio]) -> None:
        self.radio = radio
        self.bridge = bridge
        self.bands = list(bands)

    @property
    def port(self) -> int:
        return self.bridge.port

    @property
    def moniker(self) -> str:
        return self.bridge.moniker

    def band(self, serial: str) -> BandRadio:
        for band_radio in self.bands:
            if band_radio.serial == serial:
                return band_radio
        raise KeyError(serial)

    async def close(self) -> None:
        await self.bridge.close()
        for band_radio in self.bands:
            with contextlib.suppress(Exception):
                await band_radio.close()

    async def __aenter__(self) -> BleServer:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


async def serve_ble(
    bands: Iterable[EmulatedBand | SupportsLiveBand],
    port: int,
    btsnoop: str | Path | None = None,
    *,
    host: str = DEFAULT_HOST,
    radio: VirtualRadio | None = None,
    management: Callable[[EmulatedBand], ManagementService] | None = None,
    distance_m: float = 1.0,
) -> BleServer:
    """Put ``bands`` on the air and expose the radio as HCI over TCP on ``host:port``.

    A band given with its authenticator (a :class:`SupportsLiveBand`) serves FIDO over BLE when
    its fixture offers it; ``management`` builds each band's management service. Returns once
    every band advertises and the port is bound.

    :raises OSError: if the port cannot be bound (the bands are switched off again).
    """
    radio = radio or VirtualRadio()
    band_radios: list[BandRadio] = []
    for item in bands:
        if isinstance(item, EmulatedBand):
            band, authenticator = item, None
        else:
            band, authenticator = item.band, item.authenticator
        band_radios.append(BandRadio(
            radio, band, authenticator=authenticator,
            management=management(band) if management is not None else None,
            distance_m=distance_m))
    bridge = HciBridge(radio, host=host, port=port, btsnoop=btsnoop)
    server = BleServer(radio, bridge, band_radios)
    try:
        for band_radio in band_radios:
            await band_radio.start()
        await bridge.start()
    except BaseException:
        await server.close()
        raise
    return server
