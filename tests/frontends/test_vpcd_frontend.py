"""The vpcd front end without a driver: clear errors. (With pcscd: tests/e2e/test_nfc_pcsc.py.)"""

from __future__ import annotations

import socket

import pytest

from nymi_device.errors import BandUnreachableError, UnreachableReason
from simulator.band.nfc import CardOS
from simulator.frontends.vpcd import VPCD_BASE_PORT, VpcdFrontend, vpcd_reader_name


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_no_driver_listening_is_no_adapter() -> None:
    frontend = VpcdFrontend(CardOS([], uid=b"\x04\x01\x02\x03\x04\x05\x06"), port=unused_port())
    with pytest.raises(BandUnreachableError) as refused:
        await frontend.tap()
    assert refused.value.reason is UnreachableReason.NO_ADAPTER
    assert "pcscd" in str(refused.value) and not frontend.tapped


def test_slots_ports_and_reader_names() -> None:
    card = CardOS([], uid=b"\x01\x02\x03\x04")
    assert VpcdFrontend(card).port == VPCD_BASE_PORT == 35963
    assert VpcdFrontend(card, slot=1).port == 35964
    assert VpcdFrontend(card, slot=1).reader_name == vpcd_reader_name(1) == "Virtual PCD 00 01"
    with pytest.raises(ValueError):
        VpcdFrontend(card, slot=-1)
