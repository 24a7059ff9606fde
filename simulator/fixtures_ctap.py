"""The ``[ctap]`` table of a firmware fixture: what the band's FIDO2 authenticator exposes.

Values for the ``nymi-band-3.0*`` fixtures come from the FIDO metadata statement of the
"Nymi FIDO2 Authenticator" (DOMAIN.md 4.2); ``ctap21-reference`` exposes the full CTAP 2.1 set.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class CtapSpec(BaseModel):
    """What ``authenticatorGetInfo`` answers and which commands are served (CTAP 2.1 §6.4)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    aaguid: str = Field(pattern=r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
    versions: list[str]
    extensions: list[str] = []
    options: dict[str, bool] = {}
    max_msg_size: int = Field(default=1200, ge=64)
    max_credential_count_in_list: int = Field(default=20, ge=1)
    max_credential_id_length: int = Field(default=128, ge=16)
    transports: list[Literal["nfc", "ble", "usb", "internal"]] = ["nfc"]
    algorithms: list[Literal["ES256", "EdDSA"]] = ["ES256"]
    pin_uv_auth_protocols: list[int] = []
    #: The band grants getPinUvAuthTokenUsingUvWithPermissions (its built-in UV) although its
    #: getInfo does not list ``pinUvAuthToken`` ([I]: the Nymi metadata lists credMgmt=true and no
    #: clientPin, which leaves no other way to authorise credential management).
    uv_token_unadvertised: bool = False
    resident_credential_slots: int = Field(default=100, ge=1)
    pin_retries: int = Field(default=8, ge=1)
    uv_retries: int = Field(default=5, ge=1)
    min_pin_length: int = Field(default=4, ge=4)
    max_large_blob_array: int = Field(default=1024, ge=0)
    firmware_version: int = 1
    u2f: bool = True
    # How user presence is established on this model: the band's wrist authentication
    # (Nymi: the tap itself is the gesture, ``up=false``) or a button press (reference).
    presence: Literal["wrist-authenticated", "button"] = "wrist-authenticated"
    # Basic attestation (packed, CTAP 2.1 §6.1.2 step 19): PEM files relative to
    # firmware_fixtures/, made once by scripts/make_simulation_ca.py. Without them the
    # authenticator falls back to self attestation.
    attestation_key: str | None = None
    attestation_certificate: str | None = None
    attestation_root: str | None = None
    # Band seconds the authenticator waits for a gesture, a fingerprint or a sample.
    user_action_timeout_s: float = Field(default=30.0, gt=0)
    # Sign counters are persisted as a reserved ceiling, this many assertions ahead: one flash
    # commit per block; after a restart counting resumes above the ceiling.
    counter_reserve: int = Field(default=4096, ge=1)

    @property
    def never_waits_for_wearer(self) -> bool:
        """Presence and UV are the band's wrist authentication, so no request ever waits for
        the wearer: a front end may answer in its own thread, without a hand-over to a worker
        that would keep sending keep-alives meanwhile."""
        return self.presence == "wrist-authenticated" and self.options.get("uv", False)
