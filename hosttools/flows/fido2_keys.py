"""The band's FIDO2 security key for a relying party: create it, sign in with it.

A discoverable credential is made on the band through python-fido2's ``Fido2Client`` (user
verification: the band authenticated on the wrist), verified by a relying party (python-fido2's
``Fido2Server``), and recorded in the NES against the user and the band. DOMAIN.md 3.4 step 4:
after enrolling to a different band the key must be created again on the new band.

How the band is reached: a simulated band served by ``nymi-sim serve --vpcd`` is tapped on the
virtual reader and reached over NFC through pcscd, as a real band is; one served with
``--ctaphid-udp`` through that front end; otherwise its authenticator in-process over its own
flash.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from fido2 import cbor
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.cose import CoseKey
from fido2.ctap import CtapDevice
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hosttools.flows.bands import Report, SimulatedBand
from hosttools.flows.delete_user_data import PreconditionError
from nymi_device.fido import open_ctap_device
from simulator.control import CONTROL_FILE, daemon_port, send_action
from simulator.nes import Nes


class _WristUv(UserInteraction):
    """python-fido2 UserInteraction for a band: verification happens on the wrist."""

    def prompt_up(self) -> None:
        return None

    def request_pin(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> str | None:
        return None

    def request_uv(self, permissions: ClientPin.PERMISSION, rp_id: str | None) -> bool:
        return True


@dataclass
class KeyResult:
    account: str
    serial: str
    rp_id: str
    credential_id: str
    sign_count: int = 0
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@contextlib.contextmanager
def band_ctap_device(band: SimulatedBand) -> Iterator[CtapDevice]:
    """A python-fido2 device on a simulated band's authenticator."""
    band_dir = band.fleet.band_dir(band.serial)
    port = daemon_port(band_dir)
    if port is not None:
        meta = json.loads((band_dir / CONTROL_FILE).read_text())
        vpcd = meta.get("vpcd")
        if vpcd:
            # The real band's way: FIDO2 over NFC, the band tapped on the reader, through pcscd.
            send_action(port, "tap", {})
            device = open_ctap_device(f"pcsc:{vpcd['reader']}", timeout=10)
            try:
                yield device
            finally:
                device.close()
            return
        udp = meta.get("ctaphid_udp")
        if not udp:
            raise PreconditionError(f"band {band.serial} is served without a FIDO2 front end")
        device = open_ctap_device(f"udp:127.0.0.1:{udp[0]}", local_port=udp[1])
        try:
            yield device
        finally:
            device.close()
        return
    from simulator.band.ctap.inprocess import InProcessCtapDevice
    from simulator.serve import live_band

    with live_band(band.fleet, band.serial, auto_presence=False) as live:
        yield InProcessCtapDevice(live.authenticator)


def _cose_map(data: bytes) -> dict[int, Any]:
    decoded = cbor.decode(data)
    if not isinstance(decoded, dict):
        raise PreconditionError("the recorded public key is not a COSE key")
    return decoded


def _origin(rp_id: str) -> str:
    return f"https://{rp_id}"


def _ready(band: SimulatedBand, report: Report) -> None:
    state = band.state()["state"]
    if state["enrollment"] != "enrolled":
        raise PreconditionError(f"band {band.serial} is not enrolled: enroll it first")
    if not (state["on_wrist"] and state["auth"] == "authenticated"):
        if not state["on_wrist"]:
            band.physical("wear")
        band.physical("finger", match=True)
        report("Authenticate on the wrist (matching finger)", {})


def create_key(band: SimulatedBand, nes: Nes, account: str, rp_id: str,
               report: Report) -> KeyResult:
    """Create and record the user's FIDO2 security key on ``band`` for ``rp_id``."""
    account = nes.resolve_account(account)
    _ready(band, report)
    server = Fido2Server(PublicKeyCredentialRpEntity(id=rp_id, name=rp_id))
    username = account.split("\\")[-1]
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=account.encode(), name=username, display_name=username),
        user_verification=UserVerificationRequirement.REQUIRED,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED)
    with band_ctap_device(band) as device:
        client = Fido2Client(device, DefaultClientDataCollector(_origin(rp_id)),
                             user_interaction=_WristUv())
        registration = client.make_credential(options.public_key)
    auth_data = server.register_complete(state, registration)
    credential = auth_data.credential_data
    assert credential is not None
    report(f"Security key created on {band.serial} for {rp_id}, verified by the relying party",
           {"credential_id": credential.credential_id.hex()})
    nes.record_fido2_key(account, band.serial, rp_id, bytes(credential.credential_id),
                         cbor.encode(dict(credential.public_key)))
    report(f"Recorded at {nes.name} for {account}", {})
    return KeyResult(account, band.serial, rp_id, credential.credential_id.hex(),
                     auth_data.counter)


def verify_key(band: SimulatedBand, nes: Nes, account: str, rp_id: str,
               report: Report) -> KeyResult:
    """Sign in to ``rp_id`` with the key the NES records for ``account`` on ``band``."""
    account = nes.resolve_account(account)
    keys = [k for k in nes.fido2_keys(account, band.serial) if k.rp_id == rp_id]
    if not keys:
        raise PreconditionError(f"{account} has no security key for {rp_id} on {band.serial}: "
                                "create one first")
    credentials = [AttestedCredentialData.create(bytes(16), k.credential_id,
                                                 CoseKey.parse(_cose_map(k.public_key_cose)))
                   for k in keys]
    _ready(band, report)
    server = Fido2Server(PublicKeyCredentialRpEntity(id=rp_id, name=rp_id))
    options, state = server.authenticate_begin(
        credentials, user_verification=UserVerificationRequirement.REQUIRED)
    with band_ctap_device(band) as device:
        client = Fido2Client(device, DefaultClientDataCollector(_origin(rp_id)),
                             user_interaction=_WristUv())
        response = client.get_assertion(options.public_key).get_response(0)
    used = server.authenticate_complete(state, credentials, response)
    report(f"Signed in to {rp_id} with the security key on {band.serial}", {})
    return KeyResult(account, band.serial, rp_id, used.credential_id.hex(),
                     response.response.authenticator_data.counter)
