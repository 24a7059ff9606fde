"""``nymi-sim serve --ctaphid-udp`` in its own process; the host in this one.

The band's authenticator is reached only through CTAPHID datagrams on loopback with python-fido2's
own ``CtapHidDevice``; the physical world is moved with ``nymi-sim`` commands, which the control
API routes to the daemon.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest
from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap import CtapError
from fido2.ctap2.base import Ctap2
from fido2.ctap2.credman import CredentialManagement
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import PublicKeyCredentialRpEntity, PublicKeyCredentialUserEntity

from nymi_device.fido import open_ctap_device
from simulator.fleet import Fleet
from simulator.serve import make_ready
from tests.e2e.serve_helpers import Served, serve

ERR = CtapError.ERR
ES256 = [{"type": "public-key", "alg": -7}]
RP = PublicKeyCredentialRpEntity(id="example.com", name="Example")


def _fleet(tmp_path: Path, fixture: str, serial: str, ready: bool) -> Path:
    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band(fixture, serial)
    if ready:
        with fleet.open_band(serial) as band:
            make_ready(band)
    return fleet.root


def _device(served: Served):  # type: ignore[no-untyped-def]
    return open_ctap_device(served.target, local_port=served.peer_port, timeout=5)


def test_nymi_band_over_udp_follows_the_wrist(tmp_path: Path) -> None:
    sim_dir = _fleet(tmp_path, "nymi-band-3.0", "AAAH-00125", ready=True)
    with serve(sim_dir, "AAAH-00125") as served:
        device = _device(served)
        ctap2 = Ctap2(device)
        info = ctap2.get_info()
        assert str(info.aaguid) == "0acf3011-bc60-f375-fb53-6f05f43154e0"
        assert info.versions == ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE"]
        assert "clientPin" not in info.options and info.options["uv"] is True
        made = ctap2.make_credential(os.urandom(32), {"id": "example.com"}, {"id": b"u1"},
                                     ES256, options={"rk": True, "uv": True})
        cred = made.auth_data.credential_data.credential_id
        allow = [{"type": "public-key", "id": cred}]
        first = ctap2.get_assertion("example.com", os.urandom(32), allow).auth_data.counter
        # Off the wrist: the band deauthenticates and refuses.
        assert served.sim("remove", "AAAH-00125").returncode == 0
        with pytest.raises(CtapError) as refused:
            ctap2.get_assertion("example.com", os.urandom(32), allow)
        assert refused.value.code == ERR.OPERATION_DENIED
        # Back on and a matching finger: works again, counter still increasing.
        assert served.sim("wear", "AAAH-00125").returncode == 0
        out = served.sim("finger", "AAAH-00125", "--match", "--json")
        assert json.loads(out.stdout)["state"]["auth"] == "authenticated"
        again = ctap2.get_assertion("example.com", os.urandom(32), allow).auth_data.counter
        assert again > first
        device.close()


def test_reference_band_presence_is_a_button_press(tmp_path: Path) -> None:
    sim_dir = _fleet(tmp_path, "ctap21-reference", "REFB-00001", ready=True)
    with serve(sim_dir, "REFB-00001") as served:
        device = _device(served)
        ctap2 = Ctap2(device)
        statuses: list[int] = []
        result: dict[str, object] = {}

        def make() -> None:
            try:
                result["made"] = ctap2.make_credential(
                    os.urandom(32), {"id": "example.com"}, {"id": b"u1"}, ES256,
                    on_keepalive=statuses.append)
            except CtapError as exc:
                result["error"] = exc.code

        worker = threading.Thread(target=make)
        worker.start()
        worker.join(0.5)
        assert worker.is_alive()  # waiting for the wearer's touch
        assert statuses and statuses[-1] == 2  # KEEPALIVE: UPNEEDED
        assert served.sim("hold-button", "REFB-00001", "top", "0.2").returncode == 0
        worker.join(10)
        assert "made" in result and result["made"].auth_data.is_user_present()  # type: ignore[attr-defined]

        # Taking the band off while it waits for the touch cancels the request.
        worker = threading.Thread(target=make)
        result.clear()
        worker.start()
        worker.join(0.5)
        assert served.sim("remove", "REFB-00001").returncode == 0
        worker.join(10)
        assert result.get("error") in (ERR.KEEPALIVE_CANCEL, ERR.OPERATION_DENIED)
        device.close()


@pytest.mark.parametrize("trigger", ["control-api", "reboot-datagram"])
def test_power_cycle_keeps_flash_and_loses_ram(tmp_path: Path, trigger: str) -> None:
    sim_dir = _fleet(tmp_path, "ctap21-reference", "REFB-00001", ready=True)
    with serve(sim_dir, "REFB-00001", "--auto-presence") as served:
        device = _device(served)
        ctap2 = Ctap2(device)
        client_pin = ClientPin(ctap2)
        client_pin.set_pin("4321")
        token = client_pin.get_pin_token("4321", ClientPin.PERMISSION.CREDENTIAL_MGMT)
        client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(
            "https://example.com"), user_interaction=_Pin("4321"))
        server = Fido2Server(RP)
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(id=b"u1", name="tw-user2"),
            resident_key_requirement="required")
        auth_data = server.register_complete(state, client.make_credential(options.public_key))
        # Three wrong PINs: blocked until the next power cycle (CTAP 2.1 §6.5.5.5).
        for _ in range(3):
            with pytest.raises(CtapError):
                client_pin.get_pin_token("0000")
        with pytest.raises(CtapError) as blocked:
            client_pin.get_pin_token("4321")
        assert blocked.value.code == ERR.PIN_AUTH_BLOCKED
        assert client_pin.get_pin_retries()[0] == 5

        if trigger == "control-api":
            assert served.sim("power-cycle", "REFB-00001").returncode == 0
        else:
            device._connection.power_cycle()  # the de-facto reboot datagram
        device.close()
        device = _device(served)
        ctap2 = Ctap2(device)
        client_pin = ClientPin(ctap2)

        # RAM is gone: the block is lifted and the old token no longer works...
        with pytest.raises(CtapError) as stale:
            CredentialManagement(ctap2, client_pin.protocol, token).get_metadata()
        assert stale.value.code == ERR.PIN_AUTH_INVALID
        # ...flash is kept: the retry counter, the PIN and the credential.
        assert client_pin.get_pin_retries()[0] == 5
        fresh = client_pin.get_pin_token("4321", ClientPin.PERMISSION.CREDENTIAL_MGMT)
        assert client_pin.get_pin_retries()[0] == 8
        meta = CredentialManagement(ctap2, client_pin.protocol, fresh).get_metadata()
        assert meta[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1
        client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(
            "https://example.com"), user_interaction=_Pin("4321"))
        options, state = server.authenticate_begin([auth_data.credential_data])
        response = client.get_assertion(options.public_key).get_response(0)
        server.authenticate_complete(state, [auth_data.credential_data], response)
        device.close()


class _Pin:
    """python-fido2 UserInteraction that answers with a PIN."""

    def __init__(self, pin: str) -> None:
        self.pin = pin

    def prompt_up(self) -> None:
        return None

    def request_pin(self, permissions: object, rp_id: object) -> str:
        return self.pin

    def request_uv(self, permissions: object, rp_id: object) -> bool:
        return True


def _ports_free(*ports: int) -> bool:
    import socket

    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                return False
    return True


def test_nymi_band_fido2_commands_on_the_default_contract(tmp_path: Path) -> None:
    if not _ports_free(8111, 7112):
        pytest.skip("UDP 8111 or 7112 is in use on this machine")
    sim_dir = _fleet(tmp_path, "ctap21-reference", "REFB-00001", ready=True)
    with serve(sim_dir, "REFB-00001", "--auto-presence", ports=(8111, 7112)) as served:
        import subprocess

        from tests.e2e.serve_helpers import EXE_DIR

        def band(*args: str) -> subprocess.CompletedProcess[str]:
            return subprocess.run([str(EXE_DIR / "nymi-band"), "-t", served.target, *args],
                                  capture_output=True, text=True, timeout=60)

        info = json.loads(band("fido2", "info", "--json").stdout)
        assert info["aaguid"] == "6e796d69-6261-6e64-2d72-656632312e30"
        assert "FIDO_2_1" in info["versions"] and info["pin_uv_protocols"] == [2, 1]
        refused = band("fido2", "credentials", "--pin", "4321")
        assert refused.returncode == 1
        assert refused.stderr.startswith("error: the authenticator refused: ")
        assert "PIN_NOT_SET" in refused.stderr
        device = _device(served)
        # A discoverable credential made before a PIN exists; afterwards it would need one.
        Ctap2(device).make_credential(os.urandom(32), {"id": "example.com"},
                                      {"id": b"u1", "name": "tw-user2"}, ES256,
                                      options={"rk": True})
        ClientPin(Ctap2(device)).set_pin("4321")
        device.close()
        listed = json.loads(band("fido2", "credentials", "--pin", "4321", "--json").stdout)
        assert listed["existing"] == 1
        assert listed["credentials"][0]["rp_id"] == "example.com"
        assert listed["credentials"][0]["user_name"] == "tw-user2"


@pytest.mark.parametrize("pin_protocol", [1, 2])
def test_pin_bio_and_hmac_secret_over_udp(tmp_path: Path, pin_protocol: int) -> None:
    """PIN/UV protocols 1 and 2, bio enrollment and hmac-secret, all through CTAPHID datagrams."""
    from fido2.ctap2.bio import FPBioEnrollment
    from fido2.ctap2.pin import PinProtocolV1, PinProtocolV2
    from fido2.utils import websafe_decode

    sim_dir = _fleet(tmp_path, "ctap21-reference", "REFB-00001", ready=True)
    with serve(sim_dir, "REFB-00001", "--auto-presence") as served:
        device = _device(served)
        ctap2 = Ctap2(device)
        protocol = PinProtocolV1() if pin_protocol == 1 else PinProtocolV2()
        client_pin = ClientPin(ctap2, protocol)
        client_pin.set_pin("4321")
        token = client_pin.get_pin_token("4321", ClientPin.PERMISSION.BIO_ENROLL)
        bio = FPBioEnrollment(ctap2, protocol, token)
        enrollment = bio.enroll()
        template_id = None
        while template_id is None:
            template_id = enrollment.capture()  # the band's sensor, a matching finger each time
        assert template_id in bio.enumerate_enrollments()

        client = Fido2Client(device, client_data_collector=DefaultClientDataCollector(
            "https://example.com"), user_interaction=_Pin("4321"))
        server = Fido2Server(RP)
        options, state = server.register_begin(
            PublicKeyCredentialUserEntity(id=b"u1", name="tw-user2"),
            user_verification="required", resident_key_requirement="required")
        registration = client.make_credential({**dict(options.public_key),
                                               "extensions": {"prf": {}}})
        auth_data = server.register_complete(state, registration)
        assert auth_data.is_user_verified()
        options, state = server.authenticate_begin([auth_data.credential_data],
                                                   user_verification="required")
        outputs = []
        for salt in (b"\x01" * 32, b"\x01" * 32, b"\x02" * 32):
            response = client.get_assertion({**dict(options.public_key), "extensions": {
                "prf": {"eval": {"first": salt}}}}).get_response(0)
            server.authenticate_complete(state, [auth_data.credential_data], response)
            outputs.append(websafe_decode(
                response.client_extension_results["prf"]["results"]["first"]))
        assert outputs[0] == outputs[1] != outputs[2]
        device.close()


def test_a_port_in_use_is_one_line_and_saves_nothing(tmp_path: Path) -> None:
    import subprocess

    from tests.e2e.serve_helpers import EXE_DIR

    fleet = Fleet(tmp_path / "fleet")
    fleet.add_band("ctap21-reference", "REFB-00001")
    fleet.add_band("ctap21-reference", "REFB-00002")
    with serve(fleet.root, "REFB-00001") as served:
        world = (fleet.root / "bands" / "REFB-00002" / "world.json").read_bytes()
        second = subprocess.run(
            [str(EXE_DIR / "nymi-sim"), "serve", "--ctaphid-udp", "--band", "REFB-00002",
             "--port", str(served.port), "--sim-dir", str(fleet.root)],
            capture_output=True, text=True, timeout=60)
        assert second.returncode == 1
        assert second.stderr == (f"error: cannot serve CTAPHID on UDP 127.0.0.1:{served.port}: "
                                 "Address already in use\n")
        assert (fleet.root / "bands" / "REFB-00002" / "world.json").read_bytes() == world
        # The same band cannot be served twice: its flash is held.
        again = served.sim("band", "list", "--json")
        assert [row["served"] for row in json.loads(again.stdout)] == [True, False]
