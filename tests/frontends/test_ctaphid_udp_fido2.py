"""End to end: python-fido2 over CTAPHID/UDP against the band's real CTAP 2.1 authenticator."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import TypeVar

from fido2.client import DefaultClientDataCollector, Fido2Client
from fido2.ctap1 import Ctap1
from fido2.ctap2 import ClientPin, CredentialManagement, Ctap2
from fido2.hid import CAPABILITY, CtapHidDevice
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    UserVerificationRequirement,
)

from nymi_device.fido import open_ctap_device
from nymi_device.transport.udp_hid import UdpCtapHidConnection
from simulator.band.ctap.authenticator import Authenticator
from simulator.band.ctap.wearer import AutoWearer
from simulator.band.storage import FlashStorage
from simulator.fixtures import load_fixture
from simulator.frontends.ctaphid_udp import CtapHidUdpServer

from .ctaphid_helpers import eventually

T = TypeVar("T")

RP = PublicKeyCredentialRpEntity(id="example.com", name="Example RP")
USER = PublicKeyCredentialUserEntity(id=b"user-0001", name="ada", display_name="Ada")
ORIGIN = "https://example.com"


@contextlib.asynccontextmanager
async def band_over_udp(tmp_path: Path) -> AsyncIterator[CtapHidUdpServer]:
    storage = FlashStorage.open(tmp_path / "flash")
    authenticator = Authenticator(load_fixture("ctap21-reference"), storage, AutoWearer(storage))
    server = CtapHidUdpServer(authenticator, port=0, peer=None)
    await server.start()
    try:
        yield server
    finally:
        await server.close()
        close = getattr(storage, "close", None)
        if callable(close):
            close()


async def on_device(server: CtapHidUdpServer, work: Callable[[CtapHidDevice], T]) -> T:
    """Run blocking python-fido2 code against the server without blocking its event loop."""

    def session() -> T:
        device = open_ctap_device(f"udp:127.0.0.1:{server.address[1]}", local_port=0)
        assert isinstance(device, CtapHidDevice)
        with device:
            return work(device)

    return await asyncio.to_thread(session)


async def test_get_info_over_udp(tmp_path: Path) -> None:
    async with band_over_udp(tmp_path) as server:
        info, caps = await on_device(server, lambda d: (Ctap2(d).get_info(), d.capabilities))
    assert "FIDO_2_1" in info.versions and "U2F_V2" in info.versions
    assert CAPABILITY.CBOR.supported(caps) and not CAPABILITY.NMSG.supported(caps)
    assert info.max_msg_size == server.channels.max_msg_size


def _register(device: CtapHidDevice) -> tuple[Fido2Server, AttestedCredentialData]:
    rp = Fido2Server(RP)
    client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
    options, state = rp.register_begin(
        USER, user_verification=UserVerificationRequirement.DISCOURAGED
    )
    auth_data = rp.register_complete(state, client.make_credential(options.public_key))
    assert auth_data.flags & auth_data.FLAG.UP
    assert auth_data.credential_data is not None
    return rp, auth_data.credential_data


def _authenticate(
    device: CtapHidDevice, rp: Fido2Server, credential: AttestedCredentialData
) -> bool:
    client = Fido2Client(device, DefaultClientDataCollector(ORIGIN))
    options, state = rp.authenticate_begin(
        [credential], user_verification=UserVerificationRequirement.DISCOURAGED
    )
    response = client.get_assertion(options.public_key).get_response(0)
    verified = rp.authenticate_complete(state, [credential], response)
    return verified.credential_id == credential.credential_id


async def test_make_credential_and_get_assertion_verified_by_fido2_server(
    tmp_path: Path,
) -> None:
    async with band_over_udp(tmp_path) as server:
        assert await on_device(server, lambda d: _authenticate(d, *_register(d)))


def _pin_and_credential_management(device: CtapHidDevice) -> list[str]:
    ctap2 = Ctap2(device)
    ctap2.make_credential(
        hashlib.sha256(b"rk").digest(),
        {"id": RP.id, "name": RP.name},
        {"id": USER.id, "name": USER.name},
        [{"type": "public-key", "alg": -7}],
        options={"rk": True},
    )
    client_pin = ClientPin(ctap2)
    client_pin.set_pin("4321")
    token = client_pin.get_pin_token("4321", ClientPin.PERMISSION.CREDENTIAL_MGMT)
    credman = CredentialManagement(ctap2, client_pin.protocol, token)
    assert credman.get_metadata()[CredentialManagement.RESULT.EXISTING_CRED_COUNT] == 1
    return [rp[CredentialManagement.RESULT.RP]["id"] for rp in credman.enumerate_rps()]


async def test_client_pin_and_credential_management_over_udp(tmp_path: Path) -> None:
    async with band_over_udp(tmp_path) as server:
        assert await on_device(server, _pin_and_credential_management) == [RP.id]


def _u2f_round_trip(device: CtapHidDevice) -> int:
    ctap1 = Ctap1(device)
    app_param = hashlib.sha256(b"https://example.com").digest()
    client_param = os.urandom(32)
    registration = ctap1.register(client_param, app_param)
    registration.verify(app_param, client_param)
    signature = ctap1.authenticate(client_param, app_param, registration.key_handle)
    signature.verify(app_param, client_param, registration.public_key)
    return signature.counter


async def test_u2f_over_ctaphid_msg(tmp_path: Path) -> None:
    async with band_over_udp(tmp_path) as server:
        assert await on_device(server, _u2f_round_trip) >= 1


async def test_u2f_version_as_python_fido2_sends_it(tmp_path: Path) -> None:
    async with band_over_udp(tmp_path) as server:
        assert await on_device(server, lambda d: Ctap1(d).get_version()) == "U2F_V2"


def _send_reboot(port: int) -> None:
    connection = UdpCtapHidConnection(port=port, local_port=0)
    try:
        connection.power_cycle()
    finally:
        connection.close()


async def test_credentials_survive_a_reboot_datagram(tmp_path: Path) -> None:
    async with band_over_udp(tmp_path) as server:
        rp, credential = await on_device(server, _register)
        await asyncio.to_thread(_send_reboot, server.address[1])
        assert await eventually(lambda: server.power_cycles == 1)
        assert await on_device(server, lambda d: _authenticate(d, rp, credential))
