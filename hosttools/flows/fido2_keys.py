"""The band's FIDO2 security key for a relying party: create it, sign in with it.

A discoverable credential is made on the band through python-fido2's ``Fido2Client`` (user
verification: the band authenticated on the wrist), verified by a relying party (python-fido2's
``Fido2Server``), and recorded in the NES against the user and the band. After enrolling to a
different band the key must be created again on the new band.

The band's authenticator is whatever its backend reaches (``FlowBand.band.fido2_device()``): in
process over the band's own flash, NFC through pcscd, CTAPHID over UDP, or FIDO over BLE.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fido2 import cbor
from fido2.client import DefaultClientDataCollector, Fido2Client, UserInteraction
from fido2.cose import CoseKey
from fido2.ctap2.pin import ClientPin
from fido2.server import Fido2Server
from fido2.webauthn import (
    AttestedCredentialData,
    PublicKeyCredentialRpEntity,
    PublicKeyCredentialUserEntity,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from hosttools.flows.bands import FlowBand, PreconditionError, Report
from nymi_device.backend import Feature
from nymi_device.protocol.model import AuthState, EnrollmentState
from nymi_device.protocol.nes import NesClient
from nymi_device.protocol.operator import PhysicalStep
from nymi_device.protocol.text import b64url


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
    """base64url, as WebAuthn shows it."""
    sign_count: int = 0
    steps: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _cose_map(data: bytes) -> dict[int, Any]:
    decoded = cbor.decode(data)
    if not isinstance(decoded, dict):
        raise PreconditionError("the recorded public key is not a COSE key")
    return decoded


def _origin(rp_id: str) -> str:
    return f"https://{rp_id}"


def check_key_band(band: FlowBand) -> None:
    """What a security key needs of the band before anyone signs in: its authenticator, and an
    enrolled user (where the band tells)."""
    band.require(Feature.FIDO2, why="a FIDO2 security key")
    if band.has(Feature.STATUS) and band.status().enrollment != EnrollmentState.ENROLLED:
        raise PreconditionError(f"band {band.serial} is not enrolled: enroll it first")


def _ready(band: FlowBand, report: Report) -> None:
    """The band enrolled, worn and authenticated: its user verification."""
    check_key_band(band)
    band.do(PhysicalStep.UNCHARGE, report)
    band.do(PhysicalStep.WEAR, report, "Wear the band")
    band.do(PhysicalStep.AUTHENTICATE, report, "Authenticate on the wrist (matching finger)")
    if band.has(Feature.STATUS) and band.status().auth != AuthState.AUTHENTICATED:
        raise PreconditionError(f"band {band.serial} is not authenticated on the wrist: it "
                                f"shows '{band.status().screen}'")


def create_key(band: FlowBand, nes: NesClient, account: str, rp_id: str,
               report: Report) -> KeyResult:
    """Create and record the user's FIDO2 security key on ``band`` for ``rp_id``."""
    account = nes.resolve_account(account)
    # A band that is not the user's active band is refused before it is touched.
    nes.check_tap(band.serial, account=account, task="creating a FIDO2 security key")
    _ready(band, report)
    server = Fido2Server(PublicKeyCredentialRpEntity(id=rp_id, name=rp_id))
    username = account.split("\\")[-1]
    options, state = server.register_begin(
        PublicKeyCredentialUserEntity(id=account.encode(), name=username, display_name=username),
        user_verification=UserVerificationRequirement.REQUIRED,
        resident_key_requirement=ResidentKeyRequirement.REQUIRED)
    device = band.band.fido2_device()
    try:
        client = Fido2Client(device, DefaultClientDataCollector(_origin(rp_id)),
                             user_interaction=_WristUv())
        registration = client.make_credential(options.public_key)
    finally:
        device.close()
    auth_data = server.register_complete(state, registration)
    credential = auth_data.credential_data
    assert credential is not None
    credential_id = b64url(bytes(credential.credential_id))
    report(f"Security key created on {band.serial} for {rp_id}, verified by the relying party",
           {"credential_id": credential_id})
    nes.record_fido2_key(account, band.serial, rp_id, bytes(credential.credential_id),
                         cbor.encode(dict(credential.public_key)))
    report(f"Recorded at {nes.name} for {account}", {})
    return KeyResult(account, band.serial, rp_id, credential_id, auth_data.counter)


def verify_key(band: FlowBand, nes: NesClient, account: str, rp_id: str,
               report: Report) -> KeyResult:
    """Sign in to ``rp_id`` with the key the NES records for ``account`` on ``band``."""
    account = nes.resolve_account(account)
    nes.check_tap(band.serial, account=account, task="FIDO2 sign-in")
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
    device = band.band.fido2_device()
    try:
        client = Fido2Client(device, DefaultClientDataCollector(_origin(rp_id)),
                             user_interaction=_WristUv())
        response = client.get_assertion(options.public_key).get_response(0)
    finally:
        device.close()
    used = server.authenticate_complete(state, credentials, response)
    report(f"Signed in to {rp_id} with the security key on {band.serial}", {})
    return KeyResult(account, band.serial, rp_id, b64url(bytes(used.credential_id)),
                     response.response.authenticator_data.counter)
