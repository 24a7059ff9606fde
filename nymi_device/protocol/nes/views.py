"""What an enterprise server answers: frozen snapshots of its records, shared with its clients.

Every view has ``to_json()`` giving plain JSON values (times as ISO 8601 UTC, bytes as
base64url), the shape the HTTP API and ``--json`` output use, and ``from_json()`` rebuilding the
view from that shape (what a client of the HTTP API does).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from nymi_device.protocol.nes.enums import (
    Action,
    EamKind,
    EamState,
    EnrollmentDestination,
    PolicyKind,
    PolicyStatus,
)
from nymi_device.protocol.nes.errors import NesRefusal, NotFound, RefusalCode
from nymi_device.protocol.nes.policy import (
    NO_INDIVIDUAL_POLICY,
    SETTING_NAMES,
    PolicyOverrides,
    PolicySettings,
)
from nymi_device.protocol.text import b64url, from_b64url


def _time(text: Any) -> datetime:
    return datetime.fromisoformat(str(text))


def _setting_values(data: Mapping[str, Any]) -> dict[str, Any]:
    values = {name: data.get(name) for name in SETTING_NAMES}
    if values["enrollment_destination"] is not None:
        values["enrollment_destination"] = EnrollmentDestination(values["enrollment_destination"])
    return values


def settings_from_json(data: Mapping[str, Any]) -> PolicySettings:
    """The :class:`PolicySettings` of ``PolicySettings.to_json()``."""
    missing = [name for name in SETTING_NAMES if data.get(name) is None]
    if missing:
        raise KeyError(f"policy settings without {', '.join(missing)}")
    return PolicySettings(**_setting_values(data))


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AssignmentView:
        return cls(serial=d["serial"], is_active=d["is_active"], is_primary=d["is_primary"],
                   notes=d["notes"], created=_time(d["created"]),
                   enrolled_at_nes=d["enrolled_at_nes"],
                   registered_at_nes=d["registered_at_nes"], label=d["label"])


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> UserView:
        return cls(account=d["account"], domain=d["domain"], username=d["username"],
                   first_name=d["first_name"], last_name=d["last_name"],
                   individual_policy=d["individual_policy"],
                   policy_status=PolicyStatus(d["policy_status"]),
                   bands=tuple(AssignmentView.from_json(b) for b in d["bands"]),
                   created=_time(d["created"]))


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> BandView:
        row = d["assignment"]
        return cls(serial=d["serial"], device_id=d["device_id"], seos_enabled=d["seos_enabled"],
                   secure_nfc=d["secure_nfc"], nfc_id=d["nfc_id"], version=d["version"],
                   created=_time(d["created"]), owner=d["owner"],
                   assignment=None if row is None else AssignmentView.from_json(row),
                   has_external_authenticator=d["has_external_authenticator"])


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> PolicyView:
        return cls(name=d["name"], kind=PolicyKind(d["kind"]), is_active=d["is_active"],
                   description=d["description"],
                   values=PolicyOverrides(**_setting_values(d["settings"])), users=d["users"])


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> Fido2KeyView:
        return cls(id=d["id"], account=d["account"], serial=d["serial"], rp_id=d["rp_id"],
                   credential_id=from_b64url(d["credential_id"]),
                   public_key_cose=from_b64url(d["public_key_cose"]),
                   created=_time(d["created"]))


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EamEntryView:
        return cls(id=d["id"], account=d["account"], serial=d["serial"],
                   kind=EamKind(d["kind"]), identifier=d["identifier"],
                   state=EamState(d["state"]), created=_time(d["created"]),
                   updated=_time(d["updated"]))


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> AuditEventView:
        return cls(id=d["id"], table=d["table"], op=d["op"], key=d["key"],
                   user_id=d["user_id"], at_utc=_time(d["at_utc"]), actor=d["actor"],
                   before=d["before"], after=d["after"])


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EnrollmentCheck:
        return cls(account=d["account"], serial=d["serial"], allowed=d["allowed"],
                   action=None if d["action"] is None else Action(d["action"]),
                   code=d["code"], message=d["message"], band_version=d["band_version"],
                   previous_owner=d["previous_owner"], displaced_serial=d["displaced_serial"])


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

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> EnrollmentResult:
        return cls(action=Action(d["action"]), account=d["account"], serial=d["serial"],
                   previous_owner=d["previous_owner"], displaced_serial=d["displaced_serial"],
                   band_version=d["band_version"], settings=settings_from_json(d["settings"]),
                   fido2_keys_removed=d["fido2_keys_removed"],
                   eam_entries=tuple(EamEntryView.from_json(e) for e in d["eam_entries"]),
                   user=UserView.from_json(d["user"]))


def tap_verdict(serial: str, owner: str | None, row: AssignmentView | None,
                account: str | None, task: str) -> AssignmentView:
    """May band ``serial`` (assigned to ``owner`` as ``row``) be used for ``task`` by
    ``account`` (None: by its owner)? Its row when it may; :class:`NesRefusal` otherwise.

    A tap task needs the user's ACTIVE band (DOMAIN 1.10: a suspended band can no longer do
    e-signature or unlock a terminal; the same holds for a replaced band, the original while a
    temporary band is out, and the old band after a self-service re-enrollment)."""
    if owner is None or row is None:
        raise NesRefusal(f"The Nymi Band {serial} is not assigned to anyone: it cannot be used "
                         f"for a {task}.", RefusalCode.NOT_OWNER, serial=serial)
    if account is not None and account.casefold() != owner.casefold():
        raise NesRefusal(f"The Nymi Band {serial} is not a Nymi Band of {account}: it cannot "
                         f"be used for a {task}.", RefusalCode.NOT_OWNER, serial=serial)
    if not row.is_active:
        raise NesRefusal(
            f"The Nymi Band {serial} of {owner} is not active (an administrator suspended or "
            f"replaced it, or another band took its place): it cannot be used for a {task}.",
            RefusalCode.NOT_ACTIVE, serial=serial, account=owner)
    return row
