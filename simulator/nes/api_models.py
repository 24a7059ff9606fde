"""Request bodies of the NES HTTP API (pydantic); anything else in a body is refused (422)."""

from __future__ import annotations

import binascii
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from nymi_device.protocol.nes import BandFacts
from nymi_device.protocol.text import from_b64url

SERIAL_PATTERN = r"^[A-Z]{4}-\d{5}$"
Serial = Annotated[str, Field(pattern=SERIAL_PATTERN, description="e.g. AAAH-00125")]
Account = Annotated[str, Field(min_length=1, max_length=200,
                               description="CORP\\username, or a unique bare username")]
Notes = Annotated[str, Field(max_length=1000)]
SettingValue = bool | int | str | None


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class LoginBody(Body):
    username: Account
    password: Annotated[str, Field(min_length=1, max_length=1024)]


class EnrollmentCheckBody(Body):
    serial: Serial


class BandBody(Body):
    """What the Nymi Band Application reports about the band it enrolls or registers."""

    serial: Serial
    device_id: Annotated[str, Field(min_length=1, max_length=128)]
    seos_enabled: bool = False
    secure_nfc: bool = False
    nfc_id: Annotated[str, Field(min_length=1, max_length=64)] | None = None
    liveness_configurable: bool = True
    nba_version: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    label: Annotated[str, Field(max_length=12)] | None = None
    expected_band_version: Annotated[int, Field(ge=0, le=2**31 - 1)] | None = Field(
        default=None, description="The band_version an enrollment check returned; the "
        "enrollment is refused (409) if the band changed since.")

    def facts(self) -> BandFacts:
        return BandFacts(serial=self.serial, device_id=self.device_id,
                         seos_enabled=self.seos_enabled, secure_nfc=self.secure_nfc,
                         nfc_id=self.nfc_id, liveness_configurable=self.liveness_configurable)


class RegistrationBody(BandBody):
    enrolled_at_nes: Annotated[str, Field(min_length=1, max_length=64)] | None = None


class SignInBody(Body):
    serial: Serial
    nba_version: Annotated[str, Field(min_length=1, max_length=32)] | None = None


class Fido2KeyBody(Body):
    serial: Serial
    rp_id: Annotated[str, Field(min_length=1, max_length=255)]
    credential_id: Annotated[str, Field(min_length=1, max_length=1400,
                                        description="base64url, without padding")]
    public_key_cose: Annotated[str, Field(min_length=1, max_length=4096,
                                          description="base64url COSE_Key, without padding")]

    @field_validator("credential_id", "public_key_cose")
    @classmethod
    def _base64url(cls, value: str) -> str:
        try:
            if not from_b64url(value):
                raise ValueError("empty")
        except (binascii.Error, ValueError) as exc:
            raise ValueError("must be base64url (RFC 4648 §5) without padding") from exc
        return value

    def credential_bytes(self) -> bytes:
        return from_b64url(self.credential_id)

    def public_key_bytes(self) -> bytes:
        return from_b64url(self.public_key_cose)


class UserCreateBody(Body):
    account: Account


class IndividualPolicyBody(Body):
    policy: Annotated[str, Field(min_length=1, max_length=128)] | None = Field(
        description="An individual policy's name, or null for the group policy")


class BandUpdateBody(Body):
    is_active: bool | None = None
    is_primary: bool | None = None
    notes: Notes | None = None


class NotesBody(Body):
    notes: Notes | None = None


class ReassignBody(Body):
    to: Account
    nba_version: Annotated[str, Field(min_length=1, max_length=32)] | None = None
    label: Annotated[str, Field(max_length=12)] | None = None


class PolicyCreateBody(Body):
    name: Annotated[str, Field(min_length=1, max_length=128)]
    kind: Literal["group", "individual"] = "individual"
    copy_of: Annotated[str, Field(min_length=1, max_length=128)] | None = None
    description: Annotated[str, Field(max_length=1000)] = ""
    settings: dict[Annotated[str, Field(max_length=200)], SettingValue] = Field(
        default_factory=dict, description="setting name or option label -> value")


class PolicyUpdateBody(Body):
    settings: dict[Annotated[str, Field(max_length=200)], SettingValue] = Field(
        min_length=1, description="setting name or option label -> value (null clears an "
        "individual policy's value)")
