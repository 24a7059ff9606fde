"""Where FIDO over BLE runs a request: the radio's thread, or the worker.

A model whose presence is a button (the reference) hands each request to a worker thread, so
that the radio keeps sending KEEPALIVEs while it waits (tests/frontends/test_ble_inprocess.py).
An authenticator that never waits for the wearer (presence and UV are a Nymi band's wrist
authentication) is served ``inline``: in the event loop's thread, answered before the write
response, with no hand-over (which alone costs about as much as the authenticator's work).
Nymi models carry FIDO over NFC only, so ``inline`` is forced here on the reference band.
"""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import pytest
from bleak import BleakClient
from fido2.ctap2.base import Ctap2

from nymi_device.transport.ble import CtapBleDevice
from nymi_device.transport.bumble_backend import BleakClientBumble
from simulator.fleet import Fleet
from simulator.frontends.ble import BandRadio, VirtualRadio
from simulator.serve import live_band, make_ready

pytestmark = pytest.mark.asyncio

SERIAL = "AAAH-00140"


@pytest.mark.parametrize("inline", [False, True])
async def test_requests_run_in_the_loop_thread_only_when_inline(tmp_path: Path,
                                                                 inline: bool) -> None:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("ctap21-reference", SERIAL)
    with live_band(fleet, SERIAL, auto_presence=True) as live:
        make_ready(live.band)
        threads: list[threading.Thread] = []
        process_cbor = live.authenticator.process_cbor

        def recording(*args: object, **kwargs: object) -> bytes:
            threads.append(threading.current_thread())
            return process_cbor(*args, **kwargs)  # type: ignore[arg-type]

        live.authenticator.process_cbor = recording  # type: ignore[method-assign]
        radio = VirtualRadio()
        band_radio = BandRadio(radio, live.band, authenticator=live.authenticator)
        await band_radio.start()
        assert band_radio.fido is not None and band_radio.fido.inline is False
        band_radio.fido.inline = inline
        client = BleakClient(band_radio.address, backend=BleakClientBumble,
                             hci=radio.host_transport("host"), pair=True, timeout=5)
        await client.connect()
        try:
            device = await CtapBleDevice.open(client, timeout=5)
            info = await asyncio.to_thread(lambda: Ctap2(device).get_info())
            assert "FIDO_2_0" in info.versions
        finally:
            await client.disconnect()
            await band_radio.close()
    assert threads, "the authenticator was never called"
    assert all((t is threading.main_thread()) is inline for t in threads), threads
