"""Lookups and view builders that run inside a transaction (a :class:`Session`)."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes.enums import PolicyStatus
from nymi_device.protocol.nes.errors import NesInvalidInput, NotFound
from nymi_device.protocol.nes.views import (
    AssignmentView,
    BandView,
    EamEntryView,
    Fido2KeyView,
    PolicyView,
    UserView,
)
from simulator.nes.config import NesConfig
from simulator.nes.models import (
    Assignment,
    Band,
    EamEntry,
    ExternalAuthenticator,
    Fido2Key,
    Policy,
    PolicyKind,
    User,
)
from simulator.nes.policy import PolicySettings, effective, overrides_from_row

SERIAL_RE = re.compile(r"^[A-Z]{4}-\d{5}$")
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._\-]{0,63}$")
_VERSION_RE = re.compile(r"(\d+)\.(\d+)")


def now(session: Session) -> datetime:
    value = session.info.get("now")
    return value if isinstance(value, datetime) else datetime.now(UTC)


def check_serial(serial: str) -> str:
    if not SERIAL_RE.match(serial):
        raise NesInvalidInput(f"serial {serial!r} is not of the form AAAA-00000 "
                              "(4 capital letters, '-', 5 digits)")
    return serial


def split_account(account: str, default_domain: str | None = None) -> tuple[str, str]:
    """``(domain, username)`` of ``DOMAIN\\username`` (or of a bare username and the default)."""
    text = account.strip()
    if "\\" in text:
        domain, _, username = text.partition("\\")
    elif default_domain is not None:
        domain, username = default_domain, text
    else:
        raise NesInvalidInput(f"account {account!r} is not of the form DOMAIN\\username")
    if not _NAME_RE.match(domain) or not _NAME_RE.match(username):
        raise NesInvalidInput(f"account {account!r} is not of the form DOMAIN\\username "
                              "(letters, digits, '.', '_' and '-')")
    return domain.upper(), username


def account_key(domain: str, username: str) -> str:
    return f"{domain}\\{username}".casefold()


def find_user(session: Session, account: str) -> User | None:
    """The user named ``DOMAIN\\username``, or by a bare username when it is unique."""
    text = account.strip()
    if "\\" in text:
        domain, username = split_account(text)
        return session.scalar(select(User).where(User.account_key == account_key(domain,
                                                                                 username)))
    matches = session.scalars(
        select(User).where(func.lower(User.username) == text.casefold()).limit(2)).all()
    if len(matches) > 1:
        raise NesInvalidInput(f"username {text!r} exists in several domains; "
                              "name the account as DOMAIN\\username")
    return matches[0] if matches else None


def get_user(session: Session, account: str) -> User:
    user = find_user(session, account)
    if user is None:
        raise NotFound(f"no user {account} in this NES", "user", account)
    return user


def find_band(session: Session, serial: str) -> Band | None:
    return session.scalar(select(Band).where(Band.serial == check_serial(serial)))


def get_band(session: Session, serial: str) -> Band:
    band = find_band(session, serial)
    if band is None:
        raise NotFound(f"no Nymi Band {serial} in this NES", "band", serial)
    return band


def assignment_of(session: Session, band: Band) -> Assignment | None:
    return session.scalar(select(Assignment).where(Assignment.band_id == band.id))


def assignments_of(session: Session, user: User) -> list[Assignment]:
    return list(session.scalars(
        select(Assignment).join(Band).where(Assignment.user_id == user.id)
        .order_by(Assignment.created_at, Band.serial)))


def active_assignment(session: Session, user: User) -> Assignment | None:
    return session.scalar(select(Assignment).where(Assignment.user_id == user.id,
                                                   Assignment.is_active.is_(True)))


def get_policy(session: Session, name: str) -> Policy:
    policy = session.scalar(select(Policy).where(func.lower(Policy.name) == name.casefold()))
    if policy is None:
        raise NotFound(f"no policy {name!r} in this NES", "policy", name)
    return policy


def active_group_policy(session: Session) -> Policy:
    policy = session.scalar(select(Policy).where(Policy.kind == PolicyKind.GROUP,
                                                 Policy.is_active.is_(True)))
    if policy is None:  # pragma: no cover - seeding and the service keep one active
        raise NotFound("this NES has no active group policy", "policy", "active group")
    return policy


def effective_settings(session: Session, user: User) -> PolicySettings:
    group = overrides_from_row(active_group_policy(session)).complete()
    individual = (None if user.individual_policy_id is None
                  else overrides_from_row(session.get_one(Policy, user.individual_policy_id)))
    return effective(group, individual)


def band_policy_digest(band: Band, settings: PolicySettings) -> str:
    """The digest of what the band actually runs once ``settings`` are written to it.

    A band whose firmware cannot have liveness configured keeps liveness on, so its status stays
    "Pending" while the policy disables liveness (DOMAIN 1.9).
    """
    if not band.liveness_configurable and not settings.liveness_detection:
        return replace(settings, liveness_detection=True).digest()
    return settings.digest()


def nba_version_tuple(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    match = _VERSION_RE.search(text)
    return None if match is None else (int(match.group(1)), int(match.group(2)))


def policy_status(session: Session, user: User, config: NesConfig) -> PolicyStatus:
    active = active_assignment(session, user)
    if active is None:
        return PolicyStatus.NO_ACTIVE_BAND
    version = nba_version_tuple(active.nba_version)
    if version is not None and version < config.individual_policy_min_nba:
        return PolicyStatus.INFORMATION_UNAVAILABLE
    if active.policy_digest != effective_settings(session, user).digest():
        return PolicyStatus.PENDING
    return PolicyStatus.ACTIVE


def assignment_view(row: Assignment) -> AssignmentView:
    return AssignmentView(
        serial=row.band.serial, is_active=row.is_active, is_primary=row.is_primary,
        notes=row.notes, created=row.created_at, enrolled_at_nes=row.enrolled_at_nes,
        registered_at_nes=row.registered_at_nes, label=row.label)


def user_view(session: Session, user: User, config: NesConfig) -> UserView:
    policy = None if user.individual_policy is None else user.individual_policy.name
    return UserView(
        account=user.account, domain=user.domain, username=user.username,
        first_name=user.first_name, last_name=user.last_name, individual_policy=policy,
        policy_status=policy_status(session, user, config),
        bands=tuple(assignment_view(a) for a in assignments_of(session, user)),
        created=user.created_at)


def band_view(session: Session, band: Band) -> BandView:
    row = assignment_of(session, band)
    external = session.scalar(select(ExternalAuthenticator.id)
                              .where(ExternalAuthenticator.band_id == band.id))
    return BandView(
        serial=band.serial, device_id=band.device_id, seos_enabled=band.seos_enabled,
        secure_nfc=band.secure_nfc, nfc_id=band.nfc_id, version=band.version,
        created=band.created_at, owner=None if row is None else row.user.account,
        assignment=None if row is None else assignment_view(row),
        has_external_authenticator=external is not None)


def policy_view(session: Session, policy: Policy) -> PolicyView:
    users = session.scalar(select(func.count(User.id))
                           .where(User.individual_policy_id == policy.id)) or 0
    return PolicyView(name=policy.name, kind=policy.kind, is_active=policy.is_active,
                      description=policy.description, values=overrides_from_row(policy),
                      users=users)


def fido2_view(row: Fido2Key) -> Fido2KeyView:
    return Fido2KeyView(id=row.id, account=row.user.account, serial=row.band.serial,
                        rp_id=row.rp_id, credential_id=row.credential_id,
                        public_key_cose=row.public_key_cose, created=row.created_at)


def eam_view(row: EamEntry) -> EamEntryView:
    return EamEntryView(id=row.id, account=row.user.account, serial=row.band.serial,
                        kind=row.kind, identifier=row.identifier, state=row.state,
                        created=row.created_at, updated=row.updated_at)
