"""What the service layer returns: frozen snapshots built inside the transaction.

Every view has ``to_json()`` giving plain JSON values (times as ISO 8601 UTC, bytes as
base64url), the shape the HTTP API and ``--json`` output use.
"""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from simulator.nes.errors import NotFound
from simulator.nes.models import EamKind, EamState, PolicyKind
from simulator.nes.policy import NO_INDIVIDUAL_POLICY, PolicyOverrides, PolicySettings
from simulator.nes.rules import Action


class PolicyStatus(enum.StrEnum):
    """A user's policy status as the policy-membership search shows it (DOMAIN 2.5)."""

    NO_ACTIVE_BAND = "No active Nymi Band"
    PENDING = "Pending"
    ACTIVE = "Active"
    INFORMATION_UNAVAILABLE = "Information unavailable"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def from_b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class AssignmentView:
    """One row of the band table in User Properties (DOMAIN 3.6)."""

    serial: str
    is_active: bool
    is_primary: bool
    notes: str
    created: datetime
    enrolled_at_nes: str | None
    registered_at_nes: str | None
    label: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial, "is_active": self.is_active, "is_primary": self.is_primary,
            "notes": self.notes, "created": self.created.isoformat(),
            "enrolled_at_nes": self.enrolled_at_nes,
            "registered_at_nes": self.registered_at_nes, "label": self.label,
        }


@dataclass(frozen=True)
class UserView:
    """User Properties: the user, their individual policy, policy status and bands."""

    account: str
    domain: str
    username: str
    first_name: str
    last_name: str
    individual_policy: str | None
    policy_status: PolicyStatus
    bands: tuple[AssignmentView, ...]
    created: datetime

    @property
    def individual_policy_display(self) -> str:
        """The "Individual User Policy" column: the policy, or "none[group policy applied]"."""
        return self.individual_policy or NO_INDIVIDUAL_POLICY

    @property
    def active_band(self) -> AssignmentView | None:
        return next((b for b in self.bands if b.is_active), None)

    def band(self, serial: str) -> AssignmentView:
        for row in self.bands:
            if row.serial == serial:
                return row
        raise NotFound(f"{self.account} has no Nymi Band {serial}", "assignment", serial)

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account, "domain": self.domain, "username": self.username,
            "first_name": self.first_name, "last_name": self.last_name,
            "individual_policy": self.individual_policy,
            "individual_policy_display": self.individual_policy_display,
            "policy_status": self.policy_status.value,
            "bands": [b.to_json() for b in self.bands],
            "created": self.created.isoformat(),
        }


@dataclass(frozen=True)
class BandView:
    """The "Nymi Band" page: the band, and its association if it has one."""

    serial: str
    device_id: str
    seos_enabled: bool
    secure_nfc: bool
    nfc_id: str | None
    version: int
    created: datetime
    owner: str | None
    assignment: AssignmentView | None
    has_external_authenticator: bool

    def to_json(self) -> dict[str, Any]:
        return {
            "serial": self.serial, "device_id": self.device_id,
            "seos_enabled": self.seos_enabled, "secure_nfc": self.secure_nfc,
            "nfc_id": self.nfc_id, "version": self.version, "created": self.created.isoformat(),
            "owner": self.owner,
            "assignment": None if self.assignment is None else self.assignment.to_json(),
            "has_external_authenticator": self.has_external_authenticator,
        }


@dataclass(frozen=True)
class PolicyView:
    name: str
    kind: PolicyKind
    is_active: bool
    description: str
    values: PolicyOverrides
    """Complete for a group policy; for an individual policy ``None`` = group value applies."""
    users: int
    """How many users have this as their individual policy."""

    def settings(self) -> PolicySettings:
        """The complete settings of a group policy."""
        return self.values.complete()

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "kind": self.kind.value, "is_active": self.is_active,
            "description": self.description, "settings": self.values.to_json(),
            "users": self.users,
        }


@dataclass(frozen=True)
class Fido2KeyView:
    id: int
    account: str
    serial: str
    rp_id: str
    credential_id: bytes
    public_key_cose: bytes
    created: datetime

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "account": self.account, "serial": self.serial, "rp_id": self.rp_id,
            "credential_id": b64url(self.credential_id),
            "public_key_cose": b64url(self.public_key_cose), "created": self.created.isoformat(),
        }


@dataclass(frozen=True)
class EamEntryView:
    """An entry of the EAM registry; a blacklisted smart card shows as "Old Card" (DOMAIN 5)."""

    id: int
    account: str
    serial: str
    kind: EamKind
    identifier: str
    state: EamState
    created: datetime
    updated: datetime

    @property
    def state_label(self) -> str:
        if self.state is EamState.BLACKLISTED and self.kind is EamKind.SMART_CARD:
            return "Old Card"
        return self.state.value.capitalize()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "account": self.account, "serial": self.serial,
            "kind": self.kind.value, "identifier": self.identifier, "state": self.state.value,
            "state_label": self.state_label, "created": self.created.isoformat(),
            "updated": self.updated.isoformat(),
        }


@dataclass(frozen=True)
class AuditEventView:
    id: int
    table: str
    op: str
    key: str
    user_id: int | None
    at_utc: datetime
    actor: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id, "table": self.table, "op": self.op, "key": self.key,
            "user_id": self.user_id, "at_utc": self.at_utc.isoformat(), "actor": self.actor,
            "before": self.before, "after": self.after,
        }


@dataclass(frozen=True)
class EnrollmentCheck:
    """The answer to "may this user enroll this band?", given before anything is written.

    ``band_version`` is what an enrollment passes back as ``expected_band_version`` so that it is
    refused if the band changed hands in between.
    """

    account: str
    serial: str
    allowed: bool
    action: Action | None
    code: str | None
    message: str | None
    band_version: int
    previous_owner: str | None
    displaced_serial: str | None

    def to_json(self) -> dict[str, Any]:
        return {
            "account": self.account, "serial": self.serial, "allowed": self.allowed,
            "action": None if self.action is None else self.action.value, "code": self.code,
            "message": self.message, "band_version": self.band_version,
            "previous_owner": self.previous_owner, "displaced_serial": self.displaced_serial,
        }


@dataclass(frozen=True)
class EnrollmentResult:
    """What an enrollment or registration changed, and the user's properties afterwards."""

    action: Action
    account: str
    serial: str
    previous_owner: str | None
    displaced_serial: str | None
    band_version: int
    settings: PolicySettings
    """The effective policy written to the band."""
    fido2_keys_removed: int
    eam_entries: tuple[EamEntryView, ...]
    user: UserView

    def to_json(self) -> dict[str, Any]:
        return {
            "action": self.action.value, "account": self.account, "serial": self.serial,
            "previous_owner": self.previous_owner, "displaced_serial": self.displaced_serial,
            "band_version": self.band_version, "settings": self.settings.to_json(),
            "fido2_keys_removed": self.fido2_keys_removed,
            "eam_entries": [e.to_json() for e in self.eam_entries],
            "user": self.user.to_json(),
        }
