"""The band as a contactless card behind the real PC/SC stack, with no mock in the path.

emulated band → card OS → vpcd front end (TCP) → pcscd + vsmartcard vpcd driver → pyscard →
python-fido2 (``CtapPcscDevice``, ``Ctap2``, ``Fido2Client``) and our host tools.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from fido2.attestation import Attestation
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.ctap import STATUS, CtapError
from fido2.ctap2 import Ctap2
from fido2.server import Fido2Server
from fido2.webauthn import (
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)
from smartcard.System import readers as pyscard_readers
from typer.testing import CliRunner

from hosttools.nfc_cli import nfc_app, read_nfc
from nymi_device.errors import BandUnreachableError, UnreachableReason
from nymi_device.fido import open_ctap_device
from nymi_device.protocol.model import Button
from nymi_device.transport.pcsc import list_readers, wait_for_card
from simulator.band.nfc import CardOS, build_card_os
from simulator.fleet import Fleet
from simulator.frontends.vpcd import VpcdFrontend, vpcd_reader_name
from simulator.pcscd import PcscdHandle
from simulator.serve import LiveBand, live_band, make_ready

T = TypeVar("T")

pytestmark = pytest.mark.usefixtures("pcscd")

RP = PublicKeyCredentialRpEntity(id="example.com", name="Example RP")
USER = PublicKeyCredentialUserEntity(id=b"user-0001", name="ada", display_name="Ada")
ORIGIN = "https://example.com"
ES256 = [{"type": "public-key", "alg": -7}]
SLOT = 0
READER = vpcd_reader_name(SLOT)


class LoopThread:
    """An asyncio loop in a thread: the simulator's side, while the test thread is the host."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 15) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


@pytest.fixture(scope="module")
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@dataclass
class Tapped:
    live: LiveBand
    card: CardOS
    frontend: VpcdFrontend
    loop: LoopThread

    def untap(self) -> None:
        self.loop.run(self.frontend.untap())
        wait_for_card(READER, timeout=5, present=False)

    def tap(self) -> None:
        self.loop.run(self.frontend.tap())
        wait_for_card(READER, timeout=5)


@contextlib.contextmanager
def tapped(tmp_path: Path, loop: LoopThread, fixture: str, serial: str, *,
           ready: bool = True, slot: int = SLOT) -> Iterator[Tapped]:
    """A band of ``fixture`` (worn and authenticated when ``ready``) on the virtual reader."""
    fleet = Fleet(tmp_path / "fleet", durable=False)
    fleet.add_band(fixture, serial)
    if ready:
        with fleet.open_band(serial) as band:
            make_ready(band)
    with live_band(fleet, serial, auto_presence=False) as live:
        card = build_card_os(live.band, live.authenticator)
        frontend = VpcdFrontend(card, slot=slot)
        loop.run(frontend.tap())
        wait_for_card(vpcd_reader_name(slot), timeout=5)
        try:
            yield Tapped(live, card, frontend, loop)
        finally:
            loop.run(frontend.untap())
            with contextlib.suppress(BandUnreachableError):
                wait_for_card(vpcd_reader_name(slot), timeout=5, present=False)
            card.close()


class PressTopButton(UserInteraction):
    """The person at the reader: presses the band's top button when presence is asked for."""

    def __init__(self, live: LiveBand) -> None:
        self.live = live
        self.prompts = 0

    def prompt_up(self) -> None:
        self.prompts += 1
        band = self.live.band
        with band.lock:
            band.press(Button.TOP)
            band.release(Button.TOP)


def test_pyscard_sees_the_band_arrive_and_leave(tmp_path: Path, loop: LoopThread) -> None:
    with tapped(tmp_path, loop, "nymi-band-3.0", "AAAH-00125") as band:
        assert READER in [str(r) for r in pyscard_readers()]
        states = {r.name: r for r in list_readers()}
        assert states[READER].has_card and states[READER].atr == band.card.atr
        assert band.card.atr.hex().upper() == "3B8A80018073C021C0544E796D69BE"
        band.untap()
        assert not {r.name: r for r in list_readers()}[READER].has_card
        with pytest.raises(BandUnreachableError) as absent:
            open_ctap_device(f"pcsc:{READER}")
        assert absent.value.reason is UnreachableReason.NOT_ON_READER
        band.tap()
        assert {r.name: r for r in list_readers()}[READER].has_card


def test_reference_band_fido2_client_verified_by_fido2_server(
    tmp_path: Path, loop: LoopThread
) -> None:
    with tapped(tmp_path, loop, "ctap21-reference", "REFB-00001") as band:
        device = open_ctap_device(f"pcsc:{READER}")
        person = PressTopButton(band.live)
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN), person)
        server = Fido2Server(RP)
        options, state = server.register_begin(
            USER, user_verification=UserVerificationRequirement.DISCOURAGED)
        registered = server.register_complete(state, client.make_credential(options.public_key))
        credential = registered.credential_data
        assert credential is not None and registered.flags & registered.FLAG.UP
        options, state = server.authenticate_begin(
            [credential], user_verification=UserVerificationRequirement.DISCOURAGED)
        response = client.get_assertion(options.public_key).get_response(0)
        verified = server.authenticate_complete(state, [credential], response)
        assert verified.credential_id == credential.credential_id
        # Presence was a real wait for the wearer: answered 9100 + UPNEEDED until the press.
        assert person.prompts == 2
        device.close()


def test_nymi_band_ctap2_with_uv_over_pcsc(tmp_path: Path, loop: LoopThread) -> None:
    with tapped(tmp_path, loop, "nymi-band-3.0", "AAAH-00125") as band:
        device = open_ctap_device("pcsc:")  # the first reader holding a card
        ctap2 = Ctap2(device)
        info = ctap2.get_info()
        assert str(info.aaguid) == "0acf3011-bc60-f375-fb53-6f05f43154e0"
        assert info.options["uv"] is True and "clientPin" not in info.options
        client_data_hash = os.urandom(32)
        made = ctap2.make_credential(client_data_hash, {"id": "example.com"}, {"id": b"u1"},
                                     ES256, options={"rk": True, "uv": True})
        assert made.fmt == "packed"  # basic attestation with the batch key
        Attestation.for_type(made.fmt)().verify(made.att_stmt, made.auth_data, client_data_hash)
        data = made.auth_data.credential_data
        assert data is not None and made.auth_data.flags & made.auth_data.FLAG.UV
        allow = [{"type": "public-key", "id": data.credential_id}]
        challenge = os.urandom(32)
        got = ctap2.get_assertion("example.com", challenge, allow, options={"uv": True})
        got.verify(challenge, data.public_key)
        assert got.auth_data.flags & got.auth_data.FLAG.UV
        # Off the wrist the band deauthenticates: the authenticator refuses, the card still answers.
        with band.live.band.lock:
            band.live.band.take_off()
        with pytest.raises(CtapError) as refused:
            ctap2.get_assertion("example.com", os.urandom(32), allow, options={"uv": True})
        assert refused.value.code == CtapError.ERR.OPERATION_DENIED
        device.close()


def test_band_removed_mid_operation_then_tapped_again(tmp_path: Path, loop: LoopThread) -> None:
    with tapped(tmp_path, loop, "ctap21-reference", "REFB-00002") as band:
        server = Fido2Server(RP)
        device = open_ctap_device(f"pcsc:{READER}")
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN), PressTopButton(band.live))
        options, state = server.register_begin(
            USER, user_verification=UserVerificationRequirement.DISCOURAGED)
        credential = server.register_complete(
            state, client.make_credential(options.public_key)).credential_data
        assert credential is not None
        # A second registration waits for the button; the band leaves the reader meanwhile.
        ctap2 = Ctap2(device)
        waiting = threading.Event()
        outcome: list[BaseException | object] = []

        def keepalive(status: STATUS) -> None:
            if status == STATUS.UPNEEDED:
                waiting.set()

        def register() -> None:
            try:
                outcome.append(ctap2.make_credential(os.urandom(32), {"id": "example.com"},
                                                     {"id": b"u2"}, ES256,
                                                     on_keepalive=keepalive))
            except BaseException as exc:  # collected for the assertion below
                outcome.append(exc)

        worker = threading.Thread(target=register)
        worker.start()
        assert waiting.wait(10), "the authenticator never asked for presence"
        band.untap()
        worker.join(10)
        assert not worker.is_alive()
        [error] = outcome
        assert isinstance(error, BandUnreachableError), error
        assert error.reason is UnreachableReason.NOT_ON_READER
        assert READER in str(error)
        device.close()
        # Tapped again: a fresh connection carries on with the credential registered before,
        # and the abandoned request left nothing behind (no busy applet, no waiting worker).
        band.tap()
        device = open_ctap_device(f"pcsc:{READER}")
        client = Fido2Client(device, DefaultClientDataCollector(ORIGIN), PressTopButton(band.live))
        options, state = server.authenticate_begin(
            [credential], user_verification=UserVerificationRequirement.DISCOURAGED)
        response = client.get_assertion(options.public_key).get_response(0)
        assert server.authenticate_complete(state, [credential], response).credential_id == (
            credential.credential_id)
        device.close()


@pytest.mark.skipif(shutil.which("pcsc_scan") is None, reason="pcsc-tools is not installed")
def test_pcsc_scan_sees_the_band(tmp_path: Path, loop: LoopThread) -> None:
    with tapped(tmp_path, loop, "nymi-band-3.0", "AAAH-00125"):
        scan = subprocess.run(["pcsc_scan", "-n", "-t", "2"], capture_output=True, text=True,
                              timeout=20)
    out = scan.stdout
    assert READER in out
    assert "Card inserted" in out
    assert "3B 8A 80 01 80 73 C0 21 C0 54 4E 79 6D 69 BE" in out


@pytest.mark.parametrize(("fixture", "applet", "other"), [
    ("nymi-band-3.0-secure-nfc", "secure-nfc", "seos"),
    ("nymi-band-3.0-seos", "seos", "secure-nfc"),
])
def test_nfc_read_names_the_band_and_its_applets(
    tmp_path: Path, loop: LoopThread, fixture: str, applet: str, other: str
) -> None:
    with tapped(tmp_path, loop, fixture, "NFCB-00001") as band:
        reading = read_nfc(READER, timeout=2)
        applets = {a.name: a for a in reading.applets}
        assert reading.uid == band.live.band.identity.nfc_id
        assert applets["fido"].status == "answers" and applets[applet].status == "answers"
        assert applets[other].status == "absent"
        assert reading.aaguid == "0acf3011-bc60-f375-fb53-6f05f43154e0"
        assert reading.fixtures == [fixture]
        # Through the command line, as JSON; then off the wrist the applet refuses.
        result = CliRunner().invoke(nfc_app, ["read", "--reader", READER, "--json"])
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["fixtures"] == [fixture]
        with band.live.band.lock:
            band.live.band.take_off()
        refused = {a.name: a for a in read_nfc(READER).applets}[applet]
        assert refused.status == "refuses" and refused.sw == "6982"
        listed = CliRunner().invoke(nfc_app, ["readers", "--json"])
        assert {r["name"]: r["has_card"] for r in json.loads(listed.stdout)}[READER] is True


def test_nothing_on_the_reader_is_a_clear_error(pcscd: PcscdHandle) -> None:
    with pytest.raises(BandUnreachableError) as none:
        read_nfc(READER, timeout=0.3)
    assert none.value.reason is UnreachableReason.NOT_ON_READER
    with pytest.raises(BandUnreachableError) as unknown:
        open_ctap_device("pcsc:No Such Reader")
    assert unknown.value.reason is UnreachableReason.NO_ADAPTER



def test_ensure_pcscd_leaves_a_running_daemon_alone(pcscd: PcscdHandle) -> None:
    from simulator.pcscd import ensure_pcscd, pcscd_running

    again = ensure_pcscd()
    assert not again.started and again.pid is None
    again.stop()
    assert pcscd_running()


def test_fido2_cli_over_pcsc(tmp_path: Path, loop: LoopThread,
                             capsys: pytest.CaptureFixture[str]) -> None:
    from hosttools.cli import main

    with tapped(tmp_path, loop, "nymi-band-3.0", "AAAH-00125"):
        assert main(["--target", f"pcsc:{READER}", "fido2", "info", "--json"]) == 0
        info = json.loads(capsys.readouterr().out)
        assert info["aaguid"] == "0acf3011-bc60-f375-fb53-6f05f43154e0"
    assert main(["--target", "pcsc:", "fido2", "info"]) == 1
    assert "no band on any PC/SC reader" in capsys.readouterr().err


def test_a_name_matching_several_readers_picks_the_one_with_the_band(
    tmp_path: Path, loop: LoopThread
) -> None:
    with tapped(tmp_path, loop, "nymi-band-3.0", "AAAH-00125", slot=1):
        device = open_ctap_device("pcsc:Virtual PCD")  # matches slot 0 (empty) and slot 1
        assert str(Ctap2(device).get_info().aaguid) == "0acf3011-bc60-f375-fb53-6f05f43154e0"
        device.close()
        assert read_nfc("Virtual PCD").reader == vpcd_reader_name(1)
