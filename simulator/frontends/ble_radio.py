"""The air the simulated bands share: one Bumble ``LocalLink``, a path-loss model, HCI plumbing.

Every simulated band is a Bumble ``Device`` on its own virtual :class:`RadioController`; every
host (an in-process Bumble host, or another process through
:mod:`simulator.frontends.hci_bridge`) gets a controller of its own on the same link. Nothing
goes through the operating system's Bluetooth stack.

Bumble's virtual controller reports every advertisement with a fixed RSSI of -50 dBm and echoes
each advertising PDU as a scan response. :class:`RadioController` rewrites the advertising reports
it hands to its host: the RSSI follows the advertiser's simulated distance
(:class:`PathLossModel`), the TX power is the advertiser's, and a band's non-scannable
advertisement gets no scan response. It also implements HCI Reset the way a real controller
does (links dropped, scanning and advertising stopped), so a host that restarts, or a new
process on the TCP bridge, starts from a clean controller.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from bumble import hci, ll
from bumble.controller import Controller
from bumble.device import Device, device_host_event_handlers
from bumble.host import Host
from bumble.link import LocalLink
from bumble.transport.common import AsyncPipeSink, Transport, TransportSink

__all__ = [
    "DEFAULT_ACL_PACKET_LENGTH",
    "DeviceHost",
    "PathLossModel",
    "RadioController",
    "RadioLink",
    "VirtualRadio",
]

logger = logging.getLogger(__name__)
_bumble_logger = logging.getLogger("bumble.controller")

#: LE ACL payload per HCI packet. 251 is what controllers with the LE Data Length Extension
#: offer; Bumble's default of 27 would cut every 509-byte GATT write into 19 packets.
DEFAULT_ACL_PACKET_LENGTH = 251

_RSSI_MIN, _RSSI_MAX = -127, 20
_ExtReport = hci.HCI_LE_Extended_Advertising_Report_Event
_LegacyReport = hci.HCI_LE_Advertising_Report_Event


@dataclass(frozen=True)
class PathLossModel:
    """Log-distance path loss: the RSSI a receiver measures from a transmitter ``d`` metres away.

    ``RSSI(d) = P_tx - PL(d0) - 10 * n * log10(d / d0) + X``, with ``d0 = 1 m``.

    * ``P_tx``: the band's TX power (fixture ``radio.tx_power_dbm``), in dBm.
    * ``PL(d0)``: ``reference_loss_db``, the loss at 1 m. 40 dB is the free-space loss at 1 m at
      2.44 GHz (``20 * log10(4 * pi * d0 / lambda)``, ``lambda = 0.123 m``).
    * ``n``: ``exponent``, 2 in free space, typically 2.5-4 indoors.
    * ``X``: shadowing, a normal variate with standard deviation ``shadowing_db`` (0 = none, the
      default, so tests see exact values); ``seed`` makes it reproducible.

    Distances below ``min_distance_m`` count as that distance; the result is clamped to the HCI
    range -127..20 dBm and rounded to whole dBm, as controllers report it.
    """

    reference_loss_db: float = 40.0
    exponent: float = 2.0
    shadowing_db: float = 0.0
    min_distance_m: float = 0.01
    seed: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "_rng", random.Random(self.seed))

    def rssi(self, tx_power_dbm: float, distance_m: float) -> int:
        distance = max(distance_m, self.min_distance_m)
        value = tx_power_dbm - self.reference_loss_db - 10 * self.exponent * math.log10(distance)
        if self.shadowing_db > 0:
            rng: random.Random = object.__getattribute__(self, "_rng")
            value += rng.gauss(0.0, self.shadowing_db)
        return int(min(_RSSI_MAX, max(_RSSI_MIN, round(value))))

    def distance(self, tx_power_dbm: float, rssi_dbm: float) -> float:
        """The distance at which the (noise-free) model gives ``rssi_dbm``."""
        return float(10 ** ((tx_power_dbm - self.reference_loss_db - rssi_dbm)
                            / (10 * self.exponent)))


@dataclass
class _Placement:
    tx_power_dbm: int
    distance_m: float
    scannable: bool = False


class VirtualRadio:
    """One ``LocalLink`` that many simulated bands and hosts share.

    Create it, and everything on it, inside the event loop that runs them: Bumble's virtual
    controllers deliver every packet with that loop's ``call_soon``.

    :param path_loss: how distance becomes RSSI (default: :class:`PathLossModel`).
    """

    def __init__(self, path_loss: PathLossModel | None = None) -> None:
        self.link: LocalLink = RadioLink()
        self.path_loss = path_loss or PathLossModel()
        self._placements: dict[hci.Address, _Placement] = {}
        self._controllers = 0

    # -- placement of transmitters ----------------------------------------------------------

    def place(self, address: hci.Address, *, tx_power_dbm: int, distance_m: float) -> None:
        """Put a transmitter (a band) at ``distance_m`` from every host on this radio."""
        self._placements[address] = _Placement(tx_power_dbm, _check_distance(distance_m))

    def remove(self, address: hci.Address) -> None:
        self._placements.pop(address, None)

    def set_distance(self, address: hci.Address, meters: float) -> None:
        self._placements[address].distance_m = _check_distance(meters)

    def distance(self, address: hci.Address) -> float | None:
        placement = self._placements.get(address)
        return None if placement is None else placement.distance_m

    def rssi(self, address: hci.Address) -> int | None:
        """The RSSI a host on this radio receives from ``address`` now (``None``: not placed)."""
        placement = self._placements.get(address)
        if placement is None:
            return None
        return self.path_loss.rssi(placement.tx_power_dbm, placement.distance_m)

    def tx_power(self, address: hci.Address) -> int | None:
        placement = self._placements.get(address)
        return None if placement is None else placement.tx_power_dbm

    def is_placed(self, address: hci.Address) -> bool:
        return address in self._placements

    # -- controllers --------------------------------------------------------------------------

    def new_controller(
        self,
        name: str,
        *,
        host_source: object | None = None,
        host_sink: TransportSink | None = None,
        peripheral: bool = False,
    ) -> RadioController:
        """A new virtual controller on this radio: a host's, or (``peripheral``) a band's,
        which only advertises and accepts connections and hears no advertisements."""
        self._controllers += 1
        return RadioController(f"{name}#{self._controllers}", self, host_source=host_source,
                               host_sink=host_sink, peripheral=peripheral)

    def host_transport(self, name: str = "host") -> Transport:
        """An in-process HCI transport to a new controller on this radio.

        Hand it to a Bumble ``Host`` (or to the bleak backend in
        :mod:`nymi_device.transport.bumble_backend` as ``hci=``): it is the in-process
        equivalent of ``tcp-client:127.0.0.1:PORT`` through :mod:`.hci_bridge`.
        """
        source = _ControllerToHost()
        controller = self.new_controller(name, host_sink=source)
        return _InProcessTransport(source, AsyncPipeSink(controller), controller)


class RadioLink(LocalLink):
    """Bumble's ``LocalLink``, except that an advertisement reaches only the controllers that
    listen: hosts' controllers that are scanning, initiating a connection, or synchronising to
    periodic advertising. A band's controller (``peripheral``) only advertises and accepts
    connections, as a band's radio does.

    Bumble hands every advertising PDU to every other controller on the link, and a controller
    that is not listening drops it; with N bands advertising that is N² deliveries (each a
    scheduled callback holding the packet, about 10 N² a second). Connection requests
    (``CONNECT_IND``) still go to every controller.
    """

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.hearing: set[Controller] = set()  # controllers that may scan or initiate

    def add_controller(self, controller: Controller) -> None:
        super().add_controller(controller)
        if not getattr(controller, "peripheral", False):
            self.hearing.add(controller)

    def remove_controller(self, controller: Controller) -> None:
        super().remove_controller(controller)
        self.hearing.discard(controller)

    def send_advertising_pdu(self, sender_controller: Controller,
                             packet: ll.AdvertisingPdu) -> None:
        loop = asyncio.get_running_loop()
        if isinstance(packet, ll.ConnectInd):
            receivers = [c for c in self.controllers if c is not sender_controller]
        else:
            receivers = [c for c in self.hearing if c is not sender_controller and _listens(c)]
        for controller in receivers:
            loop.call_soon(controller.on_ll_advertising_pdu, packet)


def _listens(controller: Controller) -> bool:
    return bool(controller.le_scan_enable or controller.pending_le_connection is not None
                or controller.pending_periodic_advertising_syncs
                or controller.established_periodic_advertising_syncs)


def _check_distance(meters: float) -> float:
    if not math.isfinite(meters) or meters < 0:
        raise ValueError(f"distance must be a finite number of metres >= 0, got {meters!r}")
    return float(meters)


class RadioController(Controller):
    """A Bumble virtual controller whose advertising reports carry the simulated RSSI.

    It also offers the LE Data Length Extension's 251-byte ACL packets, reports its advertisers'
    TX power, and resets for real (see the module docstring).
    """

    def __init__(
        self,
        name: str,
        radio: VirtualRadio,
        *,
        host_source: object | None = None,
        host_sink: TransportSink | None = None,
        peripheral: bool = False,
    ) -> None:
        self.peripheral = peripheral  # read by the link when the controller joins it
        super().__init__(name, host_source=host_source, host_sink=host_sink, link=radio.link)
        self.radio = radio
        self.le_acl_data_packet_length = DEFAULT_ACL_PACKET_LENGTH
        self.supported_max_tx_octets = DEFAULT_ACL_PACKET_LENGTH
        self.supported_max_rx_octets = DEFAULT_ACL_PACKET_LENGTH
        self.random_address = hci.Address.generate_static_address()

    # -- reports -------------------------------------------------------------------------------

    # Bumble's controller formats a coloured debug line for every packet even when debug logging
    # is off (about a third of the time of a GATT exchange); these two format only when it is on.

    def on_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if _bumble_logger.isEnabledFor(logging.DEBUG):
            super().on_hci_packet(packet)
        elif isinstance(packet, hci.HCI_AclDataPacket):
            self.on_hci_acl_data_packet(packet)
        elif isinstance(packet, hci.HCI_Command):
            self.on_hci_command_packet(packet)
        else:
            super().on_hci_packet(packet)

    def send_hci_packet(self, packet: hci.HCI_Packet) -> None:
        if isinstance(packet, _ExtReport):
            reports = [r for r in (self._extended(r) for r in packet.reports) if r is not None]
            if not reports:
                return
            packet = _ExtReport(reports)
        elif isinstance(packet, _LegacyReport):
            legacy = [r for r in (self._legacy(r) for r in packet.reports) if r is not None]
            if not legacy:
                return
            packet = _LegacyReport(legacy)
        if _bumble_logger.isEnabledFor(logging.DEBUG):
            super().send_hci_packet(packet)
        elif self.host is not None:
            asyncio.get_running_loop().call_soon(self.host.on_packet, bytes(packet))

    def _extended(self, report: _ExtReport.Report) -> _ExtReport.Report | None:
        radio = self.radio
        rssi, tx_power = radio.rssi(report.address), radio.tx_power(report.address)
        if rssi is None or tx_power is None:
            return report
        if report.event_type & _ExtReport.EventType.SCAN_RESPONSE:
            return None  # a band's advertisement is not scannable: no scan response
        return dataclasses.replace(report, rssi=rssi, tx_power=tx_power & 0xFF)

    def _legacy(self, report: _LegacyReport.Report) -> _LegacyReport.Report | None:
        rssi = self.radio.rssi(report.address)
        if rssi is None:
            return report
        if report.event_type == _LegacyReport.EventType.SCAN_RSP:
            return None
        return dataclasses.replace(report, rssi=rssi)

    # -- commands that Bumble's virtual controller only acknowledges ---------------------------

    def on_hci_reset_command(
        self, command: hci.HCI_Reset_Command
    ) -> hci.HCI_StatusReturnParameters:
        """Vol 4, Part E, 7.3.2: a reset drops every link and stops scanning and advertising."""
        self.drop_links(hci.HCI_ErrorCode.REMOTE_USER_TERMINATED_CONNECTION_ERROR, notify=False)
        self.le_scan_enable = False
        self.pending_le_connection = None
        self.le_legacy_advertiser.stop()
        for advertising_set in self.advertising_sets.values():
            advertising_set.stop()
        self.advertising_sets.clear()
        return super().on_hci_reset_command(command)

    def on_hci_le_read_advertising_physical_channel_tx_power_command(
        self, command: hci.HCI_LE_Read_Advertising_Physical_Channel_Tx_Power_Command
    ) -> hci.HCI_LE_Read_Advertising_Physical_Channel_Tx_Power_ReturnParameters:
        tx_power = self.radio.tx_power(self.random_address)
        return hci.HCI_LE_Read_Advertising_Physical_Channel_Tx_Power_ReturnParameters(
            status=hci.HCI_ErrorCode.SUCCESS, tx_power_level=(tx_power or 0) & 0xFF
        )

    def drop_links(self, reason: int, *, notify: bool = True) -> None:
        """Terminate every LE link, as when the radio is switched off or the host goes away.

        Peers see a disconnection with ``reason``; this controller's own host is told only if
        ``notify`` (not after a reset, which the host asked for).
        """
        for connection in list(self.le_connections.values()):
            try:
                connection.send_ll_control_pdu(ll.TerminateInd(reason))
            except Exception as exc:  # the peer may already be gone from the link
                logger.debug("terminating a link to %s: %s", connection.peer_address, exc)
            if notify:
                self.on_le_disconnected(connection, reason)
            else:
                self.le_connections.pop(connection.peer_address, None)

    def detach(self) -> None:
        """Leave the link (the controller is no longer reachable)."""
        self.drop_links(hci.HCI_ErrorCode.CONNECTION_TIMEOUT_ERROR, notify=False)
        if self in self.radio.link.controllers:
            self.radio.link.remove_controller(self)


_Handler = TypeVar("_Handler", bound=Callable[..., Any])

#: The host events a Bumble ``Device`` handles with its ``on_<event>`` methods.
_DEVICE_EVENTS = frozenset(device_host_event_handlers)


class DeviceHost(Host):
    """A Bumble ``Host`` that hands its events to its ``Device`` without a listener table.

    A ``Device`` subscribes one bound method to each of its host's events (about 60); the event
    emitter keeps an ordered dict and a bound method per event for that, about 30 KiB per
    simulated band, a third of what a served band costs. This host remembers the device and
    which of its handlers are subscribed, and calls ``device.on_<event>`` directly, before any
    other listener of the event (the order of subscription: the device subscribes first, when
    it is given the host). Other listeners, and handlers of other objects, are kept as usual.
    """

    def __init__(self, controller_source: Any, controller_sink: Any) -> None:
        super().__init__(controller_source, controller_sink)
        self._subscribed: tuple[Device, frozenset[str]] | None = None  # the device, its events

    def add_listener(self, event: str, f: _Handler) -> _Handler:
        owner = getattr(f, "__self__", None)
        device, events = self._subscribed or (owner, frozenset())
        if (isinstance(owner, Device) and owner is device and event in _DEVICE_EVENTS
                and getattr(f, "__name__", None) == f"on_{event}"):
            self._subscribed = owner, _shared(events | {event})
            return f
        return super().add_listener(event, f)

    def remove_listener(self, event: str, f: Callable[..., Any]) -> None:
        if self._subscribed is not None:
            device, events = self._subscribed
            if getattr(f, "__self__", None) is device and event in events:
                events = _shared(events - {event})
                self._subscribed = (device, events) if events else None
                return
        super().remove_listener(event, f)

    def _call_handlers(self, event: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
        handled = False
        if self._subscribed is not None and event in self._subscribed[1]:
            self._emit_run(getattr(self._subscribed[0], f"on_{event}"), args, kwargs)
            handled = True
        return super()._call_handlers(event, args, kwargs) or handled


def _shared(events: frozenset[str]) -> frozenset[str]:
    """Every band's host subscribes the same events: one set for all of them."""
    return _DEVICE_EVENTS if events == _DEVICE_EVENTS else events


class _ControllerToHost:
    """The controller-to-host half of an in-process HCI transport (a Bumble transport source)."""

    def __init__(self) -> None:
        self.sink: TransportSink | None = None
        self.terminated: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def set_packet_sink(self, sink: TransportSink) -> None:
        self.sink = sink

    def on_packet(self, packet: bytes) -> None:
        if self.sink is not None:
            self.sink.on_packet(packet)


class _InProcessTransport(Transport):
    def __init__(
        self, source: _ControllerToHost, sink: AsyncPipeSink, controller: RadioController
    ) -> None:
        super().__init__(source, sink)
        self.controller = controller

    async def close(self) -> None:
        """Only unbinds the host; the controller stays on the radio for the next host."""
        if isinstance(self.source, _ControllerToHost):
            self.source.sink = None
