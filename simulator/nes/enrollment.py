"""Enrollment, registration and NBA sign-in: the association side of DOMAIN.md 2, 3.2 to 3.4.

Each function runs inside the caller's write transaction. It reads the facts, asks
:func:`simulator.nes.rules.decide`, and applies the answer: the previous owner's association is
deleted (self-service to another user's band), the user's former active band is set not active
(keeping its primary flag), the new association is written with the effective policy applied,
FIDO2 keys on a band that was wiped are dropped, the corporate credentials authenticator and the
EAM entries follow the policy, and the band's version is bumped.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from nymi_device.protocol.nes import BandFacts
from nymi_device.protocol.nes.enums import PolicyStatus
from nymi_device.protocol.nes.errors import NesConflict, NesInvalidInput, NesRefusal, RefusalCode
from nymi_device.protocol.nes.views import EamEntryView, EnrollmentCheck, EnrollmentResult
from simulator.nes import eam
from simulator.nes.config import NesConfig
from simulator.nes.models import (
    Assignment,
    Band,
    EnrollmentDestination,
    ExternalAuthenticator,
    Fido2Key,
    User,
)
from simulator.nes.policy import PolicySettings
from simulator.nes.rules import Action, Decision, Holding, decide
from simulator.nes.store import (
    active_assignment,
    assignment_of,
    assignments_of,
    band_policy_digest,
    check_serial,
    effective_settings,
    find_band,
    now,
    policy_status,
    user_view,
)

BAND_CHANGED_MESSAGE = (
    "The Nymi Band {serial} was enrolled or changed by someone else after it was tapped; "
    "tap the band again to see who it belongs to now."
)


def _holding(row: Assignment | None) -> Holding | None:
    if row is None:
        return None
    return Holding(account=row.user.account, serial=row.band.serial,
                   is_active=row.is_active, is_primary=row.is_primary)


def _eam_blocker(session: Session, band: Band | None, secure_nfc: bool = False) -> str | None:
    """Why a Secure NFC band cannot be enrolled yet: its RFID entry is not deleted."""
    if band is None or not (band.secure_nfc or secure_nfc):
        return None
    entry = eam.blocking_entry(session, band)
    return None if entry is None else eam.blocking_message(band.serial, entry)


def _decide(session: Session, config: NesConfig, user: User, serial: str,
            band: Band | None, seos: bool) -> tuple[Decision, PolicySettings]:
    settings = effective_settings(session, user)
    decision = decide(
        account=user.account, serial=serial,
        band_holding=_holding(None if band is None else assignment_of(session, band)),
        user_active=_holding(active_assignment(session, user)),
        band_seos=seos, policy=settings, config=config)
    return decision, settings


def check(session: Session, config: NesConfig, user: User, serial: str) -> EnrollmentCheck:
    """May ``user`` enroll band ``serial``? Nothing is written."""
    band = find_band(session, check_serial(serial))
    decision, _ = _decide(session, config, user, serial, band,
                          band is not None and band.seos_enabled)
    refusal = decision.refusal
    blocker = _eam_blocker(session, band)
    if refusal is None and blocker is not None:
        refusal = NesRefusal(blocker, RefusalCode.EAM_ENTRY, serial=serial)
    return EnrollmentCheck(
        account=user.account, serial=serial, allowed=refusal is None,
        action=decision.action if refusal is None else None,
        code=None if refusal is None else refusal.code.value,
        message=None if refusal is None else refusal.message,
        band_version=0 if band is None else band.version,
        previous_owner=decision.previous_owner, displaced_serial=decision.displaced_serial)


def _check_identity(band: Band | None, facts: BandFacts) -> None:
    """Refuse a report whose identity differs from what the NES recorded for this serial: the
    device id and NFC id are the band's own, so another value means another band (or a forged
    report) is claiming the serial."""
    if band is None:
        return
    if band.device_id != facts.device_id:
        raise NesConflict(
            f"The Nymi Band {facts.serial} is recorded with another device id; the band that "
            "was tapped is not the one this NES knows by that serial number.",
            code="device-id-mismatch", serial=facts.serial)
    if band.nfc_id is not None and facts.nfc_id is not None and band.nfc_id != facts.nfc_id:
        raise NesConflict(
            f"The Nymi Band {facts.serial} is recorded with another NFC id; the band that was "
            "tapped is not the one this NES knows by that serial number.",
            code="nfc-id-mismatch", serial=facts.serial)


def _band_for(session: Session, facts: BandFacts) -> Band:
    """The band's record, created from ``facts`` the first time.

    What the band proves about itself stays as first recorded: SEOS and Secure NFC can be
    recorded later (a stricter band) but never cleared by a report, and the identity was
    checked by :func:`_check_identity`. Only the firmware-dependent liveness capability follows
    the latest report (a firmware update changes it).
    """
    band = find_band(session, facts.serial)
    if band is None:
        band = Band(serial=facts.serial, device_id=facts.device_id,
                    seos_enabled=facts.seos_enabled, secure_nfc=facts.secure_nfc,
                    nfc_id=facts.nfc_id, liveness_configurable=facts.liveness_configurable,
                    version=0, created_at=now(session))
        session.add(band)
        return band
    if facts.seos_enabled and not band.seos_enabled:
        band.seos_enabled = True
    if facts.secure_nfc and not band.secure_nfc:
        band.secure_nfc = True
    if band.liveness_configurable != facts.liveness_configurable:
        band.liveness_configurable = facts.liveness_configurable
    if band.nfc_id is None and facts.nfc_id is not None:
        band.nfc_id = facts.nfc_id
    return band


def _sync_external_authenticator(session: Session, band: Band, user: User,
                                 settings: PolicySettings) -> None:
    row = session.scalar(select(ExternalAuthenticator)
                         .where(ExternalAuthenticator.band_id == band.id))
    if row is not None and (not settings.corporate_credentials or row.user_id != user.id):
        session.delete(row)
        session.flush()
        row = None
    if row is None and settings.corporate_credentials:
        session.add(ExternalAuthenticator(band=band, user_id=user.id, created_at=now(session)))


def enroll(session: Session, config: NesConfig, nes_name: str, user: User, facts: BandFacts, *,
           registration: bool = False, enrolled_at_nes: str | None = None,
           nba_version: str | None = None, label: str | None = None,
           expected_band_version: int | None = None) -> EnrollmentResult:
    """Record the enrollment (or, with ``registration``, the registration) of a band."""
    check_serial(facts.serial)
    if not facts.device_id.strip():
        raise NesInvalidInput("the band's device id is empty")
    if label is not None and len(label) > 12:
        raise NesInvalidInput("a Band Label has at most 12 characters")
    existing = find_band(session, facts.serial)
    _check_identity(existing, facts)
    seen = 0 if existing is None else existing.version
    if expected_band_version is not None and expected_band_version != seen:
        raise NesConflict(BAND_CHANGED_MESSAGE.format(serial=facts.serial),
                          code="band-changed", serial=facts.serial, expected=expected_band_version,
                          actual=seen)
    decision, settings = _decide(session, config, user, facts.serial, existing,
                                 facts.seos_enabled or (existing is not None
                                                        and existing.seos_enabled))
    if decision.refusal is not None:
        raise decision.refusal
    assert decision.action is not None
    blocker = _eam_blocker(session, existing, facts.secure_nfc)
    if blocker is not None:
        raise NesRefusal(blocker, RefusalCode.EAM_ENTRY, serial=facts.serial)

    band = _band_for(session, facts)
    session.flush()
    stamp = now(session)
    row = assignment_of(session, band)
    removed = 0
    if decision.action is Action.TAKE_OVER and row is not None:
        # The previous owner's association goes, with the keys they had on the wiped band.
        for key in session.scalars(select(Fido2Key).where(Fido2Key.band_id == band.id,
                                                          Fido2Key.user_id == row.user_id)):
            session.delete(key)
            removed += 1
        session.delete(row)
        session.flush()
        row = None
    if decision.displaced_serial is not None:
        displaced = active_assignment(session, user)
        if displaced is not None:
            displaced.is_active = False
            session.flush()
    if row is None:
        has_primary = any(a.is_primary for a in assignments_of(session, user))
        row = Assignment(band=band, user=user, is_active=True, is_primary=not has_primary,
                         notes="", created_at=stamp)
        session.add(row)
    else:
        row.is_active = True
    if registration:
        row.registered_at_nes = nes_name
        if enrolled_at_nes is not None:
            row.enrolled_at_nes = enrolled_at_nes
    else:
        row.enrolled_at_nes = nes_name
    row.nba_version = nba_version
    if label is not None or not registration:
        row.label = label
    row.policy_digest = band_policy_digest(band, settings)
    row.policy_applied_at = stamp
    session.flush()

    if not registration:
        # The band was wiped (Delete User Data) before this enrollment: its credentials are gone.
        keys = list(session.scalars(select(Fido2Key).where(Fido2Key.band_id == band.id)))
        for key in keys:
            session.delete(key)
        removed += len(keys)
    _sync_external_authenticator(session, band, user, settings)
    entries: tuple[EamEntryView, ...] = ()
    if settings.enrollment_destination is EnrollmentDestination.NES_AND_EVIDIAN:
        entries = eam.register_band(session, user, band)
    band.version += 1
    session.flush()
    return EnrollmentResult(
        action=decision.action, account=user.account, serial=band.serial,
        previous_owner=decision.previous_owner, displaced_serial=decision.displaced_serial,
        band_version=band.version, settings=settings, fido2_keys_removed=removed,
        eam_entries=entries, user=user_view(session, user, config))


def sign_in(session: Session, config: NesConfig, user: User, serial: str,
            nba_version: str | None = None) -> PolicyStatus:
    """The user signed in to the NBA wearing authenticated band ``serial``: the effective policy
    is written to the band, so a "Pending" status becomes "Active" (DOMAIN 2.4, 2.5)."""
    band = find_band(session, check_serial(serial))
    row = None if band is None else assignment_of(session, band)
    if band is None or row is None or row.user_id != user.id or not row.is_active:
        raise NesRefusal(f"The Nymi Band {serial} is not the active Nymi Band of {user.account}.",
                         RefusalCode.NOT_OWNER, serial=serial)
    settings = effective_settings(session, user)
    digest = band_policy_digest(band, settings)
    if row.policy_digest != digest:
        row.policy_digest = digest
        row.policy_applied_at = now(session)
    if nba_version is not None and row.nba_version != nba_version:
        row.nba_version = nba_version
    _sync_external_authenticator(session, band, user, settings)
    session.flush()
    return policy_status(session, user, config)


def drop_band_records(session: Session, row: Assignment) -> None:
    """Remove what hangs off an association that is being deleted (Disconnect, Restore)."""
    ext = session.scalar(select(ExternalAuthenticator)
                         .where(ExternalAuthenticator.band_id == row.band_id))
    if ext is not None:
        session.delete(ext)

