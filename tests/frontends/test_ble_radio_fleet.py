"""Many bands on one radio: what each band's Bumble stack holds and what it hears.

A band's radio only advertises and accepts connections: the air hands advertisements only to the
controllers that listen (a host scanning or connecting), not to every other band. A band's host
calls its device's event handlers without an event-emitter listener table per event, and still
hands every event to the device first and to any other listener after.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

from bleak import BleakScanner
from bleak.backends.device import BLEDevice
from bleak.backends.scanner import AdvertisementData
from bumble.device import Device, device_host_event_handlers
from bumble.transport.common import AsyncPipeSink

from nymi_device.transport.bumble_backend import BleakScannerBumble
from simulator.band.band import EmulatedBand
from simulator.fleet import Fleet
from simulator.frontends.ble import BandRadio, VirtualRadio
from simulator.frontends.ble_radio import DeviceHost, RadioController

SERIALS = ("AAAH-00201", "AAAH-00202", "AAAH-00203")


@contextmanager
def _bands(tmp: Path) -> Iterator[list[EmulatedBand]]:
    fleet = Fleet(tmp / "fleet", durable=False)
    for serial in SERIALS:
        fleet.add_band("nymi-band-3.0", serial)
    with ExitStack() as stack:
        yield [stack.enter_context(fleet.open_band(serial)) for serial in SERIALS]


def _count_heard(controller: RadioController, heard: dict[str, int]) -> None:
    original = controller.on_ll_advertising_pdu

    def counting(packet: object) -> None:
        heard[controller.name] = heard.get(controller.name, 0) + 1
        original(packet)  # type: ignore[arg-type]

    controller.on_ll_advertising_pdu = counting  # type: ignore[method-assign]


async def test_bands_hear_no_advertisements_and_a_scanning_host_hears_every_band(
        tmp_path: Path) -> None:
    with _bands(tmp_path) as bands:
        radio = VirtualRadio()
        radios = [BandRadio(radio, band, advertising_interval_ms=20) for band in bands]
        heard: dict[str, int] = {}
        seen: set[str] = set()
        for band_radio in radios:
            await band_radio.start()
            assert band_radio.controller is not None
            _count_heard(band_radio.controller, heard)
        hci = radio.host_transport()

        def detected(device: BLEDevice, _data: AdvertisementData) -> None:
            seen.add(device.address)

        try:
            async with BleakScanner(detected, backend=BleakScannerBumble, hci=hci):
                for _ in range(100):
                    if seen >= {r.address for r in radios}:
                        break
                    await asyncio.sleep(0.02)
        finally:
            for band_radio in radios:
                await band_radio.close()
        assert seen >= {r.address for r in radios}
        assert heard == {}  # no band's controller was handed another band's advertisement


class _RecordingDevice(Device):
    calls: list[tuple[str, tuple[object, ...]]]

    def on_disconnection(self, *args: object) -> None:
        self.calls.append(("device", args))


async def test_a_bands_host_hands_each_event_to_its_device_first_then_to_other_listeners(
) -> None:
    radio = VirtualRadio()
    controller = radio.new_controller("band", peripheral=True)
    host = DeviceHost(controller, AsyncPipeSink(controller))
    calls: list[tuple[str, tuple[object, ...]]] = []
    _RecordingDevice.calls = calls
    device = _RecordingDevice(name="band", host=host)
    assert "disconnection" in device_host_event_handlers
    # no listener table entry for the device's own handlers (Bumble's L2CAP manager has one)
    assert all(getattr(f, "__self__", None) is not device
               for name in device_host_event_handlers for f in host.listeners(name))
    host.on("disconnection", lambda *args: calls.append(("other", args)))
    assert host.emit("disconnection", 1, 2)
    assert calls == [("device", (1, 2)), ("other", (1, 2))]
    calls.clear()
    for name in device_host_event_handlers:  # what a Device does when given another host
        host.remove_listener(name, getattr(device, f"on_{name}"))
    host.emit("disconnection", 3, 4)
    assert calls == [("other", (3, 4))]
