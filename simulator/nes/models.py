"""The NES database, as SQLAlchemy 2 declarative models (DOMAIN.md 8.4 and 10.4).

Tables: ``users``, ``policies`` (group and individual), ``bands`` (one row per band the NES has
seen, kept for ever), ``assignments`` (the user-band association, with Is Active / Is Primary /
Notes / Created; Disconnect deletes the row), ``external_authenticators`` (bands carrying the
corporate credentials authenticator), ``fido2_keys``, ``eam_entries`` (the Evidian-style RFID
registry) and ``audit_events``. Times are stored as naive UTC and read back as aware UTC.

The database itself enforces the two invariants of DOMAIN 10.4, so no caller can break them:
``assignments.band_id`` is unique (a band belongs to at most one user) and a partial unique index
allows one active assignment per user. Another partial unique index allows one active group policy.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    text,
)
from sqlalchemy import Enum as SqlEnum
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

from nymi_device.protocol.nes.enums import EamKind as EamKind
from nymi_device.protocol.nes.enums import EamState as EamState
from nymi_device.protocol.nes.enums import EnrollmentDestination as EnrollmentDestination
from nymi_device.protocol.nes.enums import PolicyKind as PolicyKind

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UtcDateTime(TypeDecorator[datetime]):
    """A timestamp stored as naive UTC on every backend and returned timezone-aware (UTC)."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("NES timestamps must be timezone-aware")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def _enum(cls: type[enum.Enum], name: str) -> SqlEnum:
    return SqlEnum(cls, name=name, native_enum=False, length=32, create_constraint=False,
                   values_callable=lambda members: [m.value for m in members])


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Audited:
    """Rows whose every create / update / delete is written to ``audit_events``."""

    def audit_key(self) -> str:
        raise NotImplementedError

    def audit_user_id(self) -> int | None:
        return None


class Policy(Base, Audited):
    """A group or individual policy; setting columns are NULL in an individual policy when it
    leaves the setting to the active group policy (DOMAIN 8.3)."""

    __tablename__ = "policies"
    __table_args__ = (
        Index("uq_policies_one_active_group", "kind", unique=True,
              sqlite_where=text("is_active"), postgresql_where=text("is_active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(128), unique=True)
    kind: Mapped[PolicyKind] = mapped_column(_enum(PolicyKind, "policy_kind"))
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)
    description: Mapped[str] = mapped_column(Text, default="")
    liveness_detection: Mapped[bool | None] = mapped_column(Boolean)
    haptic_feedback: Mapped[bool | None] = mapped_column(Boolean)
    corporate_credentials: Mapped[bool | None] = mapped_column(Boolean)
    band_label: Mapped[bool | None] = mapped_column(Boolean)
    band_label_customize: Mapped[bool | None] = mapped_column(Boolean)
    self_reenroll_own: Mapped[bool | None] = mapped_column(Boolean)
    self_reenroll_any: Mapped[bool | None] = mapped_column(Boolean)
    lock_control: Mapped[bool | None] = mapped_column(Boolean)
    lock_when_away: Mapped[bool | None] = mapped_column(Boolean)
    unlock_when_present: Mapped[bool | None] = mapped_column(Boolean)
    enrollment_destination: Mapped[EnrollmentDestination | None] = mapped_column(
        _enum(EnrollmentDestination, "enrollment_destination"))
    nba_idle_logout_min: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def audit_key(self) -> str:
        return self.name


class User(Base, Audited):
    """A directory user the NES knows (``nub.UserCore``)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    domain: Mapped[str] = mapped_column(String(64))
    username: Mapped[str] = mapped_column(String(128))
    account_key: Mapped[str] = mapped_column(String(200), unique=True)
    """``domain\\username`` in lower case: the case-insensitive identity of the account."""
    first_name: Mapped[str] = mapped_column(String(128), default="")
    last_name: Mapped[str] = mapped_column(String(128), default="")
    individual_policy_id: Mapped[int | None] = mapped_column(
        ForeignKey("policies.id", ondelete="RESTRICT"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    individual_policy: Mapped[Policy | None] = relationship()

    @property
    def account(self) -> str:
        return f"{self.domain}\\{self.username}"

    def audit_key(self) -> str:
        return self.account

    def audit_user_id(self) -> int | None:
        return self.id


class Band(Base, Audited):
    """A band the NES has seen (``nub.NymiBand``): identity and capabilities, never deleted."""

    __tablename__ = "bands"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    serial: Mapped[str] = mapped_column(String(16), unique=True)
    device_id: Mapped[str] = mapped_column(String(128))
    seos_enabled: Mapped[bool] = mapped_column(Boolean, default=False)
    secure_nfc: Mapped[bool] = mapped_column(Boolean, default=False)
    liveness_configurable: Mapped[bool] = mapped_column(Boolean, default=True)
    """False for firmware older than CWP 1.1: a liveness change stays "Pending" (DOMAIN 1.9)."""
    nfc_id: Mapped[str | None] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer, default=0)
    """Bumped on every change of the band's association; an enrollment may name the version it
    saw when the user tapped the band, and is refused if the band changed since."""
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    def audit_key(self) -> str:
        return self.serial


class Assignment(Base, Audited):
    """The association of a band with a user, as listed in User Properties (DOMAIN 3.6)."""

    __tablename__ = "assignments"
    __table_args__ = (
        Index("uq_assignments_one_active_per_user", "user_id", unique=True,
              sqlite_where=text("is_active"), postgresql_where=text("is_active")),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="RESTRICT"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    is_active: Mapped[bool] = mapped_column(Boolean, default=True)
    is_primary: Mapped[bool] = mapped_column(Boolean, default=True)
    notes: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    enrolled_at_nes: Mapped[str | None] = mapped_column(String(64))
    registered_at_nes: Mapped[str | None] = mapped_column(String(64))
    nba_version: Mapped[str | None] = mapped_column(String(32))
    label: Mapped[str | None] = mapped_column(String(12))
    policy_digest: Mapped[str | None] = mapped_column(String(64))
    """Digest of the effective policy last written to the band (at enrollment or NBA sign-in)."""
    policy_applied_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    band: Mapped[Band] = relationship()
    user: Mapped[User] = relationship()

    def audit_key(self) -> str:
        return self.band.serial

    def audit_user_id(self) -> int | None:
        return self.user_id


class ExternalAuthenticator(Base, Audited):
    """A band carrying the corporate credentials authenticator (``nub.ExternalAuthenticator``)."""

    __tablename__ = "external_authenticators"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="RESTRICT"), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    band: Mapped[Band] = relationship()

    def audit_key(self) -> str:
        return self.band.serial

    def audit_user_id(self) -> int | None:
        return self.user_id


class Fido2Key(Base, Audited):
    """A FIDO2 security key (discoverable credential) a user created on a band."""

    __tablename__ = "fido2_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="RESTRICT"), index=True)
    rp_id: Mapped[str] = mapped_column(String(255))
    credential_id: Mapped[bytes] = mapped_column(LargeBinary, unique=True)
    public_key_cose: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)

    band: Mapped[Band] = relationship()
    user: Mapped[User] = relationship()

    def audit_key(self) -> str:
        from nymi_device.protocol.text import b64url

        return b64url(self.credential_id)

    def audit_user_id(self) -> int | None:
        return self.user_id


class EamEntry(Base, Audited):
    """An entry of the Evidian-style EAM registry (DOMAIN 5); "deleted" rows are kept."""

    __tablename__ = "eam_entries"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="RESTRICT"), index=True)
    band_id: Mapped[int] = mapped_column(ForeignKey("bands.id", ondelete="RESTRICT"), index=True)
    kind: Mapped[EamKind] = mapped_column(_enum(EamKind, "eam_kind"))
    identifier: Mapped[str] = mapped_column(String(64))
    state: Mapped[EamState] = mapped_column(_enum(EamState, "eam_state"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)

    band: Mapped[Band] = relationship()
    user: Mapped[User] = relationship()

    def audit_key(self) -> str:
        return f"{self.kind.value}:{self.identifier}"

    def audit_user_id(self) -> int | None:
        return self.user_id


class AuditEvent(Base):
    """One create / update / delete of an audited row (DOMAIN 8.4 ``audit`` schema).

    ``user_id`` is a plain integer, not a foreign key, so the history of a user outlives every
    association (DOMAIN 1.10: audit events of a former user stay queryable).
    """

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    table_name: Mapped[str] = mapped_column(String(64), index=True)
    op: Mapped[str] = mapped_column(String(8))
    key: Mapped[str] = mapped_column(String(255), index=True)
    user_id: Mapped[int | None] = mapped_column(Integer, index=True)
    at_utc: Mapped[datetime] = mapped_column(UtcDateTime, index=True)
    actor: Mapped[str] = mapped_column(String(200))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


AUDITED_TABLES: tuple[str, ...] = tuple(sorted(
    str(m.local_table.name) for m in Base.registry.mappers  # type: ignore[attr-defined]
    if issubclass(m.class_, Audited)))
