"""The NES service layer: every operation of the enterprise server, each in ONE transaction.

:class:`Nes` is what the HTTP API, the host-tool flows and the CLI call. Its methods take plain
values (accounts as ``DOMAIN\\username`` — a bare username resolves when it is unique — serials,
policy names) and return frozen views (:mod:`nymi_device.protocol.nes.views`). Whatever the
caller, the rules of DOMAIN.md 10.4 hold: one active band per user, a band belongs to at most
one user, the documented refusals, and an audit row for every create / update / delete,
written in the same transaction as the change. ``actor`` names who acts (an administrator's or
user's account, or "system") and is recorded on the audit rows.

Errors: :class:`~nymi_device.protocol.nes.errors.NesRefusal` (PermissionError) carries the
exact message for the person; :class:`~nymi_device.protocol.nes.errors.NotFound` (LookupError);
:class:`~nymi_device.protocol.nes.errors.NesConflict` (RuntimeError);
:class:`~nymi_device.protocol.nes.errors.NesInvalidInput` (ValueError).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes import BandFacts
from nymi_device.protocol.nes.enums import PolicyStatus
from nymi_device.protocol.nes.errors import (
    NesConflict,
    NesInvalidInput,
    NesRefusal,
    NotFound,
    RefusalCode,
)
from nymi_device.protocol.nes.views import (
    AssignmentView,
    AuditEventView,
    BandView,
    EamEntryView,
    EnrollmentCheck,
    EnrollmentResult,
    Fido2KeyView,
    PolicyView,
    UserView,
    tap_verdict,
)
from nymi_device.protocol.text import b64url
from simulator.nes import admin, eam, enrollment, policy_admin
from simulator.nes.config import NesConfig
from simulator.nes.db import Database
from simulator.nes.directory import Directory
from simulator.nes.migrate import upgrade
from simulator.nes.models import AuditEvent, Band, Fido2Key, PolicyKind, User
from simulator.nes.policy import PolicyOverrides, PolicySettings, effective, overrides_from_row
from simulator.nes.store import (
    account_key,
    active_group_policy,
    assignment_of,
    assignment_view,
    band_view,
    check_serial,
    effective_settings,
    fido2_view,
    find_user,
    get_band,
    get_policy,
    get_user,
    now,
    policy_status,
    policy_view,
    split_account,
    user_view,
)

logger = logging.getLogger(__name__)
T = TypeVar("T")


class Nes:
    """One Nymi Enterprise Server: its database, configuration and directory."""

    def __init__(self, database: Database, *, name: str = "nes", config: NesConfig | None = None,
                 directory: Directory | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self.db = database
        self.name = name
        self.config = config or NesConfig()
        self.directory = directory if directory is not None else Directory()
        self.clock = clock or (lambda: datetime.now(UTC))

    @classmethod
    def open(cls, target: str | Path, *, name: str = "nes", config: NesConfig | None = None,
             directory: Directory | None = None,
             clock: Callable[[], datetime] | None = None) -> Nes:
        """Open (creating and migrating as needed) the NES database at ``target``: a path to an
        SQLite file, or a ``sqlite://`` / ``postgresql://`` URL. The policies present after
        installation are created on first open."""
        config = config or NesConfig()
        database = Database(target, busy_timeout_s=config.sqlite_busy_timeout_s,
                            write_attempts=config.write_attempts)
        try:
            upgrade(database.migration_engine)
            nes = cls(database, name=name, config=config, directory=directory, clock=clock)
            nes._write(lambda s: policy_admin.seed(s, nes.config), "system")
        except BaseException:
            database.dispose()
            raise
        return nes

    def close(self) -> None:
        self.db.dispose()

    def __enter__(self) -> Nes:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Nes(name={self.name!r}, url={self.db.url.render_as_string()!r})"

    # -- plumbing ------------------------------------------------------------------------------
    def _write(self, operation: Callable[[Session], T], actor: str) -> T:
        return self.db.write(operation, actor=actor, now=self.clock)

    def _read(self, operation: Callable[[Session], T]) -> T:
        return self.db.read(operation)

    def _user(self, session: Session, account: str, *, create: bool = False) -> User:
        """The NES user; with ``create``, imported from the directory on first use."""
        user = find_user(session, account)
        if user is not None or not create:
            return user if user is not None else get_user(session, account)
        entry = self.directory.find(account)
        if entry is None:
            raise NotFound(f"no user {account} in the directory", "directory-user", account)
        user = find_user(session, entry.account)
        if user is None:
            user = User(domain=entry.domain, username=entry.username,
                        account_key=account_key(entry.domain, entry.username),
                        first_name=entry.first_name, last_name=entry.last_name,
                        created_at=now(session))
            session.add(user)
            session.flush()
        return user

    # -- users ---------------------------------------------------------------------------------
    def add_user(self, account: str, *, first_name: str = "", last_name: str = "",
                 actor: str = "system") -> UserView:
        """Create the NES record of a user (normally created from the directory on first use)."""
        domain, username = split_account(account, self.directory.default_domain)

        def op(s: Session) -> UserView:
            if find_user(s, f"{domain}\\{username}") is not None:
                raise NesConflict(f"the NES already has a user {domain}\\{username}")
            user = User(domain=domain, username=username,
                        account_key=account_key(domain, username), first_name=first_name,
                        last_name=last_name, created_at=now(s))
            s.add(user)
            s.flush()
            return user_view(s, user, self.config)
        return self._write(op, actor)

    def ensure_user(self, account: str, *, actor: str = "system") -> UserView:
        """The user's properties, importing the user from the directory if the NES lacks them."""
        return self._write(lambda s: user_view(s, self._user(s, account, create=True),
                                               self.config), actor)

    def user(self, account: str) -> UserView:
        """User Properties of ``account``."""
        return self._read(lambda s: user_view(s, get_user(s, account), self.config))

    def users(self, query: str = "", *, limit: int = 100, offset: int = 0) -> list[UserView]:
        """Search → Users: full or partial username, first or last name (DOMAIN 8.2)."""
        def op(s: Session) -> list[UserView]:
            stmt = select(User).order_by(User.account_key).limit(limit).offset(offset)
            if query.strip():
                like = f"%{query.strip().casefold()}%"
                stmt = stmt.where(or_(User.account_key.like(like),
                                      func.lower(User.first_name).like(like),
                                      func.lower(User.last_name).like(like)))
            return [user_view(s, u, self.config) for u in s.scalars(stmt)]
        return self._read(op)

    def resolve_account(self, name: str) -> str:
        """``DOMAIN\\username`` for an account or a bare username (unique in NES or directory)."""
        def op(s: Session) -> str | None:
            user = find_user(s, name)
            return None if user is None else user.account
        found = self._read(op)
        if found is not None:
            return found
        return self.directory.get(name).account

    def set_individual_policy(self, account: str, policy: str | None, *,
                              actor: str = "system") -> UserView:
        """Assign an individual policy to a user (``None``: the group policy applies)."""
        def op(s: Session) -> UserView:
            user = self._user(s, account, create=True)
            policy_admin.assign(s, user, policy)
            return user_view(s, user, self.config)
        return self._write(op, actor)

    def effective_policy(self, account: str) -> PolicySettings:
        """The user's effective policy: individual values over the active group policy. A
        directory user the NES does not know yet gets the active group policy."""
        def op(s: Session) -> PolicySettings:
            user = find_user(s, account)
            if user is None:
                self.directory.get(account)
                return effective(overrides_from_row(active_group_policy(s)).complete(), None)
            return effective_settings(s, user)
        return self._read(op)

    def policy_status(self, account: str) -> PolicyStatus:
        """The user's policy status ("No active Nymi Band" for a user the NES does not know
        yet but the directory does)."""
        def op(s: Session) -> PolicyStatus:
            user = find_user(s, account)
            if user is None:
                self.directory.get(account)
                return PolicyStatus.NO_ACTIVE_BAND
            return policy_status(s, user, self.config)
        return self._read(op)

    def policy_statuses(self, policy: str | None = None) -> list[tuple[str, PolicyStatus]]:
        """The policy-membership search: every user (or the users of an individual policy) and
        their policy status (DOMAIN 2.5)."""
        def op(s: Session) -> list[tuple[str, PolicyStatus]]:
            stmt = select(User).order_by(User.account_key)
            if policy is not None:
                stmt = stmt.where(User.individual_policy_id == get_policy(s, policy).id)
            return [(u.account, policy_status(s, u, self.config)) for u in s.scalars(stmt)]
        return self._read(op)

    # -- bands ---------------------------------------------------------------------------------
    def band(self, serial: str) -> BandView:
        return self._read(lambda s: band_view(s, get_band(s, serial)))

    def bands(self, serial_query: str = "", *, limit: int = 100) -> list[BandView]:
        """Search → Nymi Bands by (partial) serial number."""
        def op(s: Session) -> list[BandView]:
            stmt = select(Band).order_by(Band.serial).limit(limit)
            if serial_query.strip():
                stmt = stmt.where(Band.serial.like(f"%{serial_query.strip().upper()}%"))
            return [band_view(s, b) for b in s.scalars(stmt)]
        return self._read(op)

    def check_tap(self, serial: str, *, account: str | None = None,
                  task: str = "tap task") -> AssignmentView:
        """Refuse a tap task (e-signature, unlocking a terminal, FIDO2 sign-in with a key the
        NES recorded, creating such a key) on a band that is not the active band of its user.

        Returns the band's row of User Properties when it may be used; raises
        :class:`NesRefusal` with ``NOT_ACTIVE`` for a band that is suspended, replaced, set
        aside for a temporary band or left behind by a self-service re-enrollment, and with
        ``NOT_OWNER`` for a band that is assigned to nobody or (with ``account``) to someone
        else. Nothing is written."""
        def op(s: Session) -> AssignmentView:
            band = get_band(s, check_serial(serial))
            row = assignment_of(s, band)
            who = None if account is None else get_user(s, account).account
            return tap_verdict(band.serial, None if row is None else row.user.account,
                                     None if row is None else assignment_view(row), who, task)
        return self._read(op)

    def _owner_view(self, s: Session, serial: str, change: Callable[[], Any]) -> UserView:
        row = change()
        return user_view(s, row.user, self.config)

    def update_band(self, serial: str, *, is_active: bool | None = None,
                    is_primary: bool | None = None, notes: str | None = None,
                    actor: str = "system") -> UserView:
        """The "Nymi Band" page: change Is Active / Is Primary / Notes and Save."""
        return self._write(lambda s: self._owner_view(s, serial, lambda: admin.update_band(
            s, serial, is_active=is_active, is_primary=is_primary, notes=notes)), actor)

    def suspend(self, serial: str, *, notes: str | None = None,
                actor: str = "system") -> UserView:
        """Suspend: clear Is Active (and tick Is Primary). Tap tasks stop; the band's own
        biometrics are unaffected."""
        return self._write(lambda s: self._owner_view(
            s, serial, lambda: admin.suspend(s, serial, notes=notes)), actor)

    def disconnect(self, serial: str, *, actor: str = "system") -> UserView:
        """Disconnect: delete the association. Returns the former owner's properties."""
        return self._write(lambda s: self._owner_view(
            s, serial, lambda: admin.disconnect(s, serial)), actor)

    def replace_lost_band(self, serial: str, *, notes: str = "Lost Band",
                          actor: str = "system") -> UserView:
        """Replace a lost or broken band: it is no longer active nor primary (DOMAIN 3.5)."""
        return self._write(lambda s: self._owner_view(
            s, serial, lambda: admin.replace_lost_band(s, serial, notes=notes)), actor)

    def issue_temporary_band(self, serial: str, *, notes: str = "Temporary band issued",
                             actor: str = "system") -> UserView:
        """Prepare a temporary band: the original stays primary but is no longer active."""
        return self._write(lambda s: self._owner_view(
            s, serial, lambda: admin.issue_temporary_band(s, serial, notes=notes)), actor)

    def restore_original(self, serial: str, *, actor: str = "system") -> UserView:
        """Disassociate the temporary band and reactivate the original band ``serial``."""
        return self._write(lambda s: self._owner_view(
            s, serial, lambda: admin.restore_original(s, serial)), actor)

    def reassign(self, serial: str, to_account: str, *, nba_version: str | None = None,
                 label: str | None = None, actor: str = "system") -> EnrollmentResult:
        """Reassign a band: Disconnect it from its owner, and record the new user's enrollment
        of it (after Delete User Data), in one transaction (DOMAIN 3.5)."""
        def op(s: Session) -> EnrollmentResult:
            band = get_band(s, serial)
            if assignment_of(s, band) is not None:
                admin.disconnect(s, serial)
            facts = BandFacts(serial=band.serial, device_id=band.device_id,
                              seos_enabled=band.seos_enabled, secure_nfc=band.secure_nfc,
                              nfc_id=band.nfc_id, liveness_configurable=band.liveness_configurable)
            user = self._user(s, to_account, create=True)
            return enrollment.enroll(s, self.config, self.name, user, facts,
                                     nba_version=nba_version, label=label)
        return self._write(op, actor)

    # -- enrollment and registration (the Nymi Band Application's calls) ----------------------
    def check_enrollment(self, account: str, serial: str) -> EnrollmentCheck:
        """May ``account`` enroll band ``serial``? Nothing is written. The answer's
        ``band_version`` can be passed to :meth:`enroll` as ``expected_band_version``."""
        def op(s: Session) -> EnrollmentCheck:
            user = find_user(s, account)
            if user is None:
                entry = self.directory.get(account)
                user = User(domain=entry.domain, username=entry.username, id=-1,
                            account_key=account_key(entry.domain, entry.username))
            return enrollment.check(s, self.config, user, serial)
        return self._read(op)

    def enroll(self, account: str, band: BandFacts, *, nba_version: str | None = None,
               label: str | None = None, expected_band_version: int | None = None,
               actor: str | None = None) -> EnrollmentResult:
        """Record the enrollment of ``band`` to ``account`` at this NES, or refuse it.

        Refusals (:class:`NesRefusal`) carry the documented messages: "A Nymi Band has been
        assigned to (user name), however it cannot be found." and "Cannot perform re-enrollment
        because the NES policy settings do not allow re-enrollment of a Nymi Band that is
        assigned to another user." (see :mod:`simulator.nes.rules`).
        """
        def op(s: Session) -> EnrollmentResult:
            user = self._user(s, account, create=True)
            return enrollment.enroll(s, self.config, self.name, user, band,
                                     nba_version=nba_version, label=label,
                                     expected_band_version=expected_band_version)
        return self._write(op, actor or account)

    def register(self, account: str, band: BandFacts, *, enrolled_at_nes: str | None = None,
                 nba_version: str | None = None, label: str | None = None,
                 expected_band_version: int | None = None,
                 actor: str | None = None) -> EnrollmentResult:
        """Record the registration of an enrolled band at this (Registration) NES (DOMAIN 2.6):
        the same rules and association, no fingerprint capture, FIDO2 keys kept."""
        def op(s: Session) -> EnrollmentResult:
            user = self._user(s, account, create=True)
            return enrollment.enroll(s, self.config, self.name, user, band, registration=True,
                                     enrolled_at_nes=enrolled_at_nes, nba_version=nba_version,
                                     label=label, expected_band_version=expected_band_version)
        return self._write(op, actor or account)

    def nba_sign_in(self, account: str, serial: str, *, nba_version: str | None = None,
                    actor: str | None = None) -> PolicyStatus:
        """The user signed in to the NBA wearing their authenticated band: the effective policy
        reaches the band and a "Pending" status becomes "Active"."""
        return self._write(lambda s: enrollment.sign_in(
            s, self.config, get_user(s, account), serial, nba_version), actor or account)

    # -- policies ------------------------------------------------------------------------------
    def policies(self) -> list[PolicyView]:
        return self._read(policy_admin.list_views)

    def policy(self, name: str) -> PolicyView:
        return self._read(lambda s: policy_view(s, get_policy(s, name)))

    def create_policy(self, name: str, kind: PolicyKind | str = PolicyKind.INDIVIDUAL, *,
                      values: PolicyOverrides | Mapping[str, Any] | None = None,
                      copy_of: str | None = None, description: str = "",
                      actor: str = "system") -> PolicyView:
        """Create a policy, optionally as a copy of another ("Make a Copy")."""
        try:
            kind = PolicyKind(kind)
        except ValueError:
            raise NesInvalidInput(f"a policy is 'group' or 'individual', not {kind!r}") from None
        return self._write(lambda s: policy_admin.create(
            s, name, PolicyKind(kind), values=values, copy_of=copy_of,
            description=description), actor)

    def update_policy(self, name: str, changes: Mapping[str, Any], *,
                      actor: str = "system") -> PolicyView:
        """Change settings of a policy, by setting name or option label (e.g. "Allow a user to
        re-enroll / re-register their Nymi Band"); ``None`` clears an individual value."""
        return self._write(lambda s: policy_admin.update(s, name, changes), actor)

    def activate_group_policy(self, name: str, *, actor: str = "system") -> PolicyView:
        return self._write(lambda s: policy_admin.activate(s, name), actor)

    def delete_policy(self, name: str, *, actor: str = "system") -> None:
        self._write(lambda s: policy_admin.delete(s, name), actor)

    # -- FIDO2 security keys -------------------------------------------------------------------
    def record_fido2_key(self, account: str, serial: str, rp_id: str, credential_id: bytes,
                         public_key_cose: bytes, *, actor: str | None = None) -> Fido2KeyView:
        """Record a FIDO2 security key the user created on their active band."""
        if not rp_id or len(rp_id) > 255:
            raise NesInvalidInput("a relying party id has 1 to 255 characters")
        if not credential_id or len(credential_id) > 1023 or not public_key_cose:
            raise NesInvalidInput("a credential id (1 to 1023 bytes) and a COSE public key "
                                  "are required")

        def op(s: Session) -> Fido2KeyView:
            user = get_user(s, account)
            band = get_band(s, check_serial(serial))
            row = assignment_of(s, band)
            if row is None or row.user_id != user.id or not row.is_active:
                raise NesRefusal(f"The Nymi Band {serial} is not the active Nymi Band of "
                                 f"{user.account}.", RefusalCode.NOT_OWNER, serial=serial)
            if s.scalar(select(Fido2Key.id).where(Fido2Key.credential_id == credential_id)):
                raise NesConflict("this credential id is already recorded",
                                  credential_id=b64url(credential_id))
            key = Fido2Key(user=user, band=band, rp_id=rp_id, credential_id=credential_id,
                           public_key_cose=public_key_cose, created_at=now(s))
            s.add(key)
            s.flush()
            return fido2_view(key)
        return self._write(op, actor or account)

    def fido2_keys(self, account: str | None = None, serial: str | None = None
                   ) -> list[Fido2KeyView]:
        def op(s: Session) -> list[Fido2KeyView]:
            stmt = select(Fido2Key).order_by(Fido2Key.created_at, Fido2Key.id)
            if account is not None:
                stmt = stmt.where(Fido2Key.user_id == get_user(s, account).id)
            if serial is not None:
                stmt = stmt.where(Fido2Key.band_id == get_band(s, serial).id)
            return [fido2_view(k) for k in s.scalars(stmt)]
        return self._read(op)

    def delete_fido2_key(self, credential_id: bytes, *, actor: str = "system") -> None:
        def op(s: Session) -> None:
            key = s.scalar(select(Fido2Key).where(Fido2Key.credential_id == credential_id))
            if key is None:
                raise NotFound("no such FIDO2 security key", "fido2-key", b64url(credential_id))
            s.delete(key)
        self._write(op, actor)

    # -- EAM registry --------------------------------------------------------------------------
    def eam_entries(self, account: str, *, include_deleted: bool = True) -> list[EamEntryView]:
        return self._read(lambda s: eam.entries_of_user(s, get_user(s, account),
                                                        include_deleted=include_deleted))

    def eam_blacklist(self, entry_id: int, *, actor: str = "system") -> list[EamEntryView]:
        """Blacklist an entry (the Wearable takes the RFID entry with it)."""
        return self._write(lambda s: eam.blacklist(s, entry_id), actor)

    def eam_delete(self, entry_id: int, *, actor: str = "system") -> EamEntryView:
        """Delete a blacklisted entry."""
        return self._write(lambda s: eam.delete(s, entry_id), actor)

    # -- audit ---------------------------------------------------------------------------------
    def audit(self, *, table: str | None = None, account: str | None = None,
              key: str | None = None, limit: int = 1000) -> list[AuditEventView]:
        """The newest ``limit`` audit events (oldest first), optionally filtered."""
        def op(s: Session) -> list[AuditEventView]:
            stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(limit)
            if table is not None:
                stmt = stmt.where(AuditEvent.table_name == table)
            if account is not None:
                stmt = stmt.where(AuditEvent.user_id == get_user(s, account).id)
            if key is not None:
                stmt = stmt.where(AuditEvent.key == key)
            rows = list(s.scalars(stmt))[::-1]
            return [AuditEventView(id=r.id, table=r.table_name, op=r.op, key=r.key,
                                   user_id=r.user_id, at_utc=r.at_utc, actor=r.actor,
                                   before=r.before, after=r.after) for r in rows]
        return self._read(op)
