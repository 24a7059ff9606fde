"""ISO-DEP through nfcpy, against the simulated band on nfcpy's own UDP simulation link.

nfcpy's ``udp`` driver carries NFC-A frames between two nfcpy instances: the host side here is the
module under test (nfcpy's reader-mode activation and ISO-DEP initiator), the card side is the
band's card OS behind its ISO-DEP layer, answering through nfcpy's listen mode. No USB reader is
involved, so what a real reader adds (RF, the chip's own timing and CRC) is not exercised here.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import nfc
import nfc.clf
import pytest
from fido2.ctap2 import Ctap2

from nymi_device.errors import BandUnreachableError, InvalidTargetError, UnreachableReason
from nymi_device.fido import open_ctap_device
from nymi_device.protocol.apdu import SW, CommandApdu
from nymi_device.transport.nfcpy_transport import open_nfcpy
from simulator.band.nfc import CardOS, build_card_os
from simulator.band.nfc.iso_dep import IsoDepCard
from simulator.fleet import Fleet
from simulator.serve import live_band, make_ready

ES256 = [{"type": "public-key", "alg": -7}]
#: REQA, WUPA and the anticollision commands: the reader is looking for a card again.
RESTART = (b"\x26", b"\x52", b"\x93", b"\x95", b"\x97")


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class UdpPicc:
    """The band as an NFC-A card on nfcpy's UDP link, in a thread."""

    def __init__(self, card: CardOS, port: int) -> None:
        self.card = card
        self.port = port
        self.stop = threading.Event()
        self.activations = 0
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> UdpPicc:
        self._thread.start()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:  # until the card side has bound its port
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                try:
                    probe.bind(("0.0.0.0", self.port))
                except OSError:
                    return self
            time.sleep(0.005)
        raise RuntimeError("the card side did not start listening")

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as wake:  # end a pending listen
            wake.sendto(b"106A 00", ("127.0.0.1", self.port))
        self._thread.join(5)

    def _run(self) -> None:
        clf = nfc.ContactlessFrontend(f"udp:127.0.0.1:{self.port}")
        target = nfc.clf.LocalTarget("106A")
        target.sens_res = bytearray.fromhex("4400")  # double-size (7-byte) UID
        target.sdd_res = bytearray(self.card.uid)
        target.sel_res = bytearray.fromhex("20")     # ISO/IEC 14443-4 compliant
        try:
            while not self.stop.is_set():
                # One long listen: every new listen closes and rebinds the socket, and a frame
                # from the reader arriving in that gap would be lost.
                activated = clf.listen(target, 30)
                if activated is None or activated.tt4_cmd is None:
                    continue
                self.activations += 1
                iso = IsoDepCard(self.card)
                frame = activated.tt4_cmd
                while not self.stop.is_set() and frame is not None:
                    if frame[:1] in RESTART:  # the reader starts over (e.g. our ATS came late)
                        break
                    answer = iso.handle(bytes(frame))
                    try:
                        frame = clf.exchange(bytearray(answer) if answer else None, 0.5)
                    except nfc.clf.CommunicationError:
                        break
        finally:
            clf.close()


@pytest.fixture
def band_card(tmp_path: Path) -> Iterator[CardOS]:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band("nymi-band-3.0", "AAAH-00125")
    with fleet.open_band("AAAH-00125") as band:
        make_ready(band)
    with live_band(fleet, "AAAH-00125", auto_presence=False) as live:
        card = build_card_os(live.band, live.authenticator)
        yield card
        card.close()


def test_iso_dep_exchange_over_nfcpy(band_card: CardOS) -> None:
    port = free_udp_port()
    with UdpPicc(band_card, port), open_nfcpy(f"udp:127.0.0.1:{port}", timeout=5) as card:
        assert card.identifier == band_card.uid
        select = card.exchange(CommandApdu(0x00, 0xA4, 0x04, 0x00,
                                           bytes.fromhex("A0000006472F0001"), le=256))
        assert (select.data, select.sw) == (b"U2F_V2", SW.OK)
        info = card.exchange(CommandApdu(0x80, 0x10, 0x00, 0x00, b"\x04", le=256))
        assert info.sw == SW.OK and info.data[0] == 0


def test_fido2_over_nfcpy_with_python_fido2(band_card: CardOS) -> None:
    port = free_udp_port()
    with UdpPicc(band_card, port):
        device = open_ctap_device(f"nfcpy:udp:127.0.0.1:{port}", timeout=5)
        ctap2 = Ctap2(device)
        assert str(ctap2.get_info().aaguid) == "0acf3011-bc60-f375-fb53-6f05f43154e0"
        # The attestation answer is longer than one frame: the card chains its I-blocks.
        made = ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u1"},
                                     ES256, options={"uv": True})
        data = made.auth_data.credential_data
        assert data is not None
        challenge = os.urandom(32)
        got = ctap2.get_assertion("example.com", challenge,
                                  [{"type": "public-key", "id": data.credential_id}])
        got.verify(challenge, data.public_key)
        device.close()


def test_band_taken_away_is_a_clear_error(band_card: CardOS) -> None:
    port = free_udp_port()
    with UdpPicc(band_card, port) as picc:
        card = open_nfcpy(f"udp:127.0.0.1:{port}", timeout=5)
        picc.stop.set()
    with pytest.raises(BandUnreachableError) as gone:
        card.transmit(bytes.fromhex("00A4040008A0000006472F000100"))
    assert gone.value.reason is UnreachableReason.NOT_ON_READER
    card.close()


def test_nothing_tapped_in_time() -> None:
    with pytest.raises(BandUnreachableError) as none:
        open_nfcpy(f"udp:127.0.0.1:{free_udp_port()}", timeout=0.3, targets=("106A",))
    assert none.value.reason is UnreachableReason.NOT_ON_READER


def test_no_reader_and_bad_arguments() -> None:
    with pytest.raises(BandUnreachableError) as absent:
        open_nfcpy("usb:ffff:ffff", timeout=0.1)
    assert absent.value.reason is UnreachableReason.NO_ADAPTER
    with pytest.raises(InvalidTargetError):
        open_nfcpy("", timeout=0.1)
    with pytest.raises(InvalidTargetError):
        open_nfcpy("usb", targets=("106X",))
    with pytest.raises(InvalidTargetError):
        open_ctap_device("nfcpy:usb", bogus=1)
