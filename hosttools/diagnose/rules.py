"""The findings: one small rule per known problem, each a pure function of the evidence.

A rule has an id, a severity, the evidence it used and the documented fix, worded as the vendor's
support articles word it (the article's title is given as the reference). A rule fires only on
evidence that was collected: a section marked unavailable never produces a finding. Rules that
describe the same situation more precisely exclude the general one (a lockout is not also
reported as a run of NO MATCH; a band whose firmware cannot honour the policy is not also
reported as "Pending"), so each situation yields exactly one finding and a healthy band none.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hosttools.diagnose.evidence import (
    BandEvidence,
    Evidence,
    Fido2Evidence,
    NesUser,
    ServerEvidence,
)
from nymi_device.protocol.model import AuthState, EnrollmentState, EventKind

NOT_FOUND_MESSAGE = "A Nymi Band has been assigned to {user}, however it cannot be found."
OTHER_USER_MESSAGE = ("Cannot perform re-enrollment because the NES policy settings do not allow "
                      "re-enrollment of a Nymi Band that is assigned to another user.")
OWN_OPTION = "Allow a user to re-enroll / re-register their Nymi Band"
ANY_OPTION = "Allow a user to re-enroll any active Nymi Band"
#: The first firmware that can have liveness detection configured by policy.
LIVENESS_MIN_FIRMWARE = (1, 1)
#: Consecutive failures from which the band shows advice instead of NO MATCH / NO ECG.
ADVICE_AFTER_FAILURES = 3
#: At or below this charge the band shows the critical-charge image and shuts down.
CRITICAL_BATTERY_PCT = 5.0


class Severity(enum.StrEnum):
    ERROR = "error"
    """The band cannot do its job until the fix is applied."""
    WARNING = "warning"
    """The band works, but something the user or an administrator expects does not."""


@dataclass(frozen=True)
class EvidenceItem:
    """One fact a finding rests on: section, what, and its value as collected."""

    section: str
    name: str
    value: Any


@dataclass(frozen=True)
class Finding:
    rule: str
    severity: Severity
    title: str
    detail: str
    fix: str
    reference: str
    """The vendor support article the fix comes from."""
    evidence: tuple[EvidenceItem, ...]


@dataclass(frozen=True)
class Rule:
    id: str
    severity: Severity
    summary: str
    check: Callable[[Evidence], Finding | None]


RULES: list[Rule] = []


def rule(rule_id: str, severity: Severity, summary: str
         ) -> Callable[[Callable[[Evidence], Finding | None]],
                       Callable[[Evidence], Finding | None]]:
    def register(check: Callable[[Evidence], Finding | None]
                 ) -> Callable[[Evidence], Finding | None]:
        RULES.append(Rule(rule_id, severity, summary, check))
        return check
    return register


def evaluate(evidence: Evidence) -> list[Finding]:
    """Every finding for ``evidence``, errors first, in rule order."""
    found = [f for r in RULES if (f := r.check(evidence)) is not None]
    return sorted(found, key=lambda f: f.severity is not Severity.ERROR)


# -- helpers ---------------------------------------------------------------------------------

def _band(e: Evidence) -> BandEvidence | None:
    return e.band.data


def _server(e: Evidence) -> ServerEvidence | None:
    return e.server.data



def firmware_version(text: str) -> tuple[int, int] | None:
    """``CWP 1.16.0`` → (1, 16); older firmware numbered without ``CWP`` (``1.9.7``) predates
    every CWP release, so it is (0, 0); None when the text is not a version at all."""
    match = re.search(r"(CWP\s*)?(\d+)\.(\d+)", text)
    if match is None:
        return None
    if not match.group(1):
        return (0, 0)
    return (int(match.group(2)), int(match.group(3)))


def _firmware_blocks_liveness(band: BandEvidence, owner: NesUser) -> bool:
    version = firmware_version(band.info.firmware_version)
    return (not owner.liveness_detection and version is not None
            and version < LIVENESS_MIN_FIRMWARE)


def _item(section: str, name: str, value: Any) -> EvidenceItem:
    return EvidenceItem(section, name, value)


# -- rules -----------------------------------------------------------------------------------

@rule("wiped-but-associated", Severity.ERROR,
      "The band's user data was deleted but the NES still ties it to its user")
def wiped_but_associated(e: Evidence) -> Finding | None:
    band, server = _band(e), _server(e)
    if band is None or server is None or server.band is None or server.band.owner is None:
        return None
    if band.status.enrollment is not EnrollmentState.UNENROLLED:
        return None
    owner = server.owner
    if owner is not None and owner.self_service_own:
        return None  # her own re-enrollment replaces the association: nothing blocks it
    user = server.band.owner
    return Finding(
        "wiped-but-associated", Severity.ERROR,
        f"{band.info.serial} holds no user data, but the NES still assigns it to {user}",
        f"Delete User Data changes nothing at the NES. Enrolling the band again fails with "
        f"\"{NOT_FOUND_MESSAGE.format(user=user)}\" until the association is removed.",
        f"An administrator deletes the band-user association in the NES Administrator Console: "
        f"Search → Users → {user} → \"Disconnect\" next to {band.info.serial}. Alternatively "
        f"the policy option \"{OWN_OPTION}\" lets the user re-enroll it herself.",
        "Deleting User Data",
        (_item("band", "enrollment", band.status.enrollment.value),
         _item("server", "band owner", user),
         _item("server", "owner's self-service (own band)",
               None if owner is None else owner.self_service_own)))


@rule("enrolled-unknown-to-nes", Severity.ERROR,
      "The band is enrolled but the NES has no user for it")
def enrolled_unknown(e: Evidence) -> Finding | None:
    band, server = _band(e), _server(e)
    if band is None or server is None:
        return None
    if band.status.enrollment is not EnrollmentState.ENROLLED:
        return None
    if server.band is not None and server.band.owner is not None:
        return None
    recorded = "no record of the band" if server.band is None else "no user for the band"
    return Finding(
        "enrolled-unknown-to-nes", Severity.ERROR,
        f"{band.info.serial} is enrolled, but {server.nes} has {recorded}",
        "The band holds a fingerprint template and authenticates on the wrist, but the server "
        "does not know whose band it is, so tap tasks and lookups fail. An enrollment that "
        "stopped before the server was updated, or a band disconnected at the NES without "
        "Delete User Data, leaves it like this.",
        "Delete User Data on the band (off the wrist, on the charger, hold the bottom button "
        "until \"USER DATA DELETED\"), then enroll it again in the Nymi Band Application.",
        "Reassigning a Nymi Band",
        (_item("band", "enrollment", band.status.enrollment.value),
         _item("server", "band record", None if server.band is None else server.band.serial),
         _item("server", "band owner", None if server.band is None else server.band.owner)))


def _other_users_band(e: Evidence) -> tuple[BandEvidence, ServerEvidence, NesUser, str] | None:
    band, server = _band(e), _server(e)
    if band is None or server is None or server.asking_user is None or server.band is None:
        return None
    owner = server.band.owner
    if owner is None or owner == server.asking_user.account:
        return None
    return band, server, server.asking_user, owner


@rule("other-users-band", Severity.ERROR,
      "The band belongs to another user and the policy forbids enrolling it")
def other_users_band(e: Evidence) -> Finding | None:
    found = _other_users_band(e)
    if found is None:
        return None
    band, server, user, owner = found
    assert server.band is not None
    if server.band.seos_enabled or user.self_service_any:
        return None
    return Finding(
        "other-users-band", Severity.ERROR,
        f"{band.info.serial} is assigned to {owner}; {user.account}'s policy does not allow "
        "enrolling another user's band",
        f"The Nymi Band Application refuses with \"{OTHER_USER_MESSAGE}\"",
        f"Enable \"{ANY_OPTION}\" in {user.account}'s policy, or find the band by its serial "
        f"number (printed on the back) under Search → Nymi Bands and Disconnect it from "
        f"{owner}.",
        "Cannot perform re-enrollment because the NES policy settings do not allow "
        "re-enrollment of a Nymi Band that is assigned to another user",
        (_item("server", "band owner", owner),
         _item("server", "asking user", user.account),
         _item("server", f"{user.account}: {ANY_OPTION}", user.self_service_any)))


@rule("seos-other-user", Severity.ERROR,
      "An HID SEOS band of another user cannot be taken over by self-service")
def seos_other_user(e: Evidence) -> Finding | None:
    found = _other_users_band(e)
    if found is None:
        return None
    band, server, user, owner = found
    assert server.band is not None
    if not server.band.seos_enabled:
        return None
    return Finding(
        "seos-other-user", Severity.ERROR,
        f"{band.info.serial} is an HID SEOS band assigned to {owner}",
        "Self-service re-enrollment works on a SEOS-enabled band only for its own user, "
        "whatever the policy allows.",
        f"An administrator first disassociates the band from {owner} (User Details → "
        f"\"Disconnect\"); then {user.account} enrolls it.",
        "Configuring Self-Service Re-Enrollment and Self-Service Re-Registration",
        (_item("server", "band owner", owner),
         _item("server", "asking user", user.account),
         _item("server", "seos_enabled", True)))


@rule("secure-nfc-entry", Severity.ERROR,
      "A Secure NFC band's RFID entry was not blacklisted and deleted before re-enrollment")
def secure_nfc_entry(e: Evidence) -> Finding | None:
    band, server = _band(e), _server(e)
    if band is None or server is None:
        return None
    secure = bool(band.info.capabilities.get("secure_nfc")) or (
        server.band is not None and server.band.secure_nfc)
    if not secure or band.status.enrollment is not EnrollmentState.UNENROLLED:
        return None
    live = [x for x in server.eam_entries if x.serial == band.info.serial
            and x.kind.lower() in ("rfid", "wearable") and x.state != "deleted"]
    if not live:
        return None
    states = ", ".join(f"{x.kind} {x.state_label}" for x in live)
    return Finding(
        "secure-nfc-entry", Severity.ERROR,
        f"{band.info.serial}'s RFID entry in the EAM is still there ({states})",
        "In a Secure NFC deployment the band's RFID entry must be blacklisted and deleted "
        "after Delete User Data; until then the band cannot be enrolled again.",
        "In the Evidian EAM Management Console, blacklist the band's Wearable entry (this "
        "blacklists both RFID-tab entries), then delete both; then enroll the band in the "
        "Nymi Band Application.",
        "Managing Nymi Band Re-Enrollments with Self-Service",
        (_item("band", "enrollment", band.status.enrollment.value),
         *(_item("server", f"EAM {x.kind} #{x.id}", x.state_label) for x in live)))


@rule("policy-pending", Severity.WARNING,
      "Policy changes have not reached the band yet (policy status Pending)")
def policy_pending(e: Evidence) -> Finding | None:
    band, server = _band(e), _server(e)
    if server is None or server.owner is None or server.owner.policy_status != "Pending":
        return None
    if band is not None and _firmware_blocks_liveness(band, server.owner):
        return None  # the firmware rule says why it will stay Pending
    owner = server.owner
    return Finding(
        "policy-pending", Severity.WARNING,
        f"{owner.account}'s policy status is Pending",
        "The policy was changed after the band was enrolled; the band still runs the old "
        "settings.",
        f"{owner.account} signs in to the Nymi Band Application while wearing the "
        "authenticated band; the new settings are then written to the band and the status "
        "becomes Active.",
        "Searching for Individual User Policy Membership",
        (_item("server", "policy status", owner.policy_status),
         _item("server", "individual policy", owner.individual_policy)))


@rule("firmware-too-old", Severity.WARNING,
      "The band's firmware is older than a policy setting needs")
def firmware_too_old(e: Evidence) -> Finding | None:
    band, server = _band(e), _server(e)
    if band is None or server is None or server.owner is None:
        return None
    if not _firmware_blocks_liveness(band, server.owner):
        return None
    return Finding(
        "firmware-too-old", Severity.WARNING,
        f"{band.info.serial} runs firmware {band.info.firmware_version}, which cannot have "
        "liveness detection turned off",
        "Liveness detection can be configured from firmware CWP 1.1 on. The policy disables "
        "it, but the band keeps checking liveness, so its policy status stays Pending.",
        "Update the band to firmware CWP 1.1 or later, or give the user a policy with "
        "Liveness Detection enabled.",
        "Searching for Individual User Policy Membership",
        (_item("band", "firmware_version", band.info.firmware_version),
         _item("server", "Liveness Detection", server.owner.liveness_detection),
         _item("server", "policy status", server.owner.policy_status)))


@rule("lockout", Severity.ERROR, "The band is locked out after failed authentications")
def lockout(e: Evidence) -> Finding | None:
    band = _band(e)
    if band is None:
        return None
    status = band.status
    if not (status.locked_out or status.auth is AuthState.LOCKED_OUT):
        return None
    return Finding(
        "lockout", Severity.ERROR,
        f"{band.info.serial} is locked out after repeated failed authentications",
        f"The band refuses to authenticate (fingerprint failures "
        f"{status.fingerprint_failures}, liveness failures {status.liveness_failures}).",
        "Delete User Data clears the lockout: take the band off the wrist, put it on the "
        "charger, hold the bottom button until \"USER DATA DELETED\", then enroll again in the "
        "Nymi Band Application.",
        "Deleting User Data",
        (_item("band", "locked_out", status.locked_out),
         _item("band", "auth", status.auth.value),
         _item("band", "fingerprint_failures", status.fingerprint_failures),
         _item("band", "liveness_failures", status.liveness_failures)))


def _failure_screens(e: Evidence, kind: str) -> list[str]:
    events = e.events.data
    if events is None:
        return []
    wanted = {"fingerprint": ("NO MATCH", "CENTER FINGER", "CLEAN BAND"),
              "liveness": ("NO ECG", "SIT STILL", "DON'T MOVE")}[kind]
    shown = [str(t.event.data.get("screen", "")) for t in events.events
             if t.event.kind is EventKind.SCREEN]
    return [s for s in shown if s in wanted or s == "WASH & DRY HAND & WRIST"][-5:]


@rule("repeated-no-match", Severity.WARNING,
      "Repeated NO MATCH: the fingerprint does not match")
def repeated_no_match(e: Evidence) -> Finding | None:
    band = _band(e)
    if band is None or band.status.locked_out:
        return None
    failures = band.status.fingerprint_failures
    if failures < ADVICE_AFTER_FAILURES:
        return None
    return Finding(
        "repeated-no-match", Severity.WARNING,
        f"{failures} fingerprint mismatches in a row on {band.info.serial}",
        "The band shows NO MATCH for the first failures and then advice such as "
        "\"CENTER FINGER\", \"WASH & DRY HAND & WRIST\" or \"CLEAN BAND\".",
        "Clean a dirty sensor with a 70% isopropyl alcohol wipe and let it dry; dry a wet "
        "sensor with a lint-free towel; do not press too hard or too softly; clean and dry the "
        "finger (lotion if it is too dry); centre the finger on the sensor and touch the bezel "
        "too. If the fingerprint changed (a cut), re-enroll.",
        "Authentication Failures",
        (_item("band", "fingerprint_failures", failures),
         _item("events", "recent failure screens", _failure_screens(e, "fingerprint"))))


@rule("repeated-no-ecg", Severity.WARNING,
      "Repeated NO ECG: liveness detection finds no steady ECG")
def repeated_no_ecg(e: Evidence) -> Finding | None:
    band = _band(e)
    if band is None or band.status.locked_out:
        return None
    failures = band.status.liveness_failures
    if failures < ADVICE_AFTER_FAILURES:
        return None
    return Finding(
        "repeated-no-ecg", Severity.WARNING,
        f"{failures} liveness failures (NO ECG) in a row on {band.info.serial}",
        "The fingerprint matches but the band gets no steady ECG through the wrist; it shows "
        "NO ECG and then advice such as \"SIT STILL\", \"WASH & DRY HAND & WRIST\" or "
        "\"DON'T MOVE\".",
        "Keep still, wash and dry the hand and wrist, wear the band snugly, and touch both the "
        "sensor and the bezel. A small share of people cannot give a steady ECG: for them an "
        "administrator assigns the individual policy \"Liveness Detection Disabled\" (or "
        "enables Corporate Credentials Authentication as a fallback).",
        "Customizing the Nymi Band Authentication Method",
        (_item("band", "liveness_failures", failures),
         _item("events", "recent failure screens", _failure_screens(e, "liveness"))))


@rule("battery-critical", Severity.ERROR, "The battery is critically low")
def battery_critical(e: Evidence) -> Finding | None:
    band = _band(e)
    if band is None:
        return None
    status = band.status
    if status.battery_pct > CRITICAL_BATTERY_PCT:
        return None
    where = "on its charger" if status.on_charger else "not on a charger"
    return Finding(
        "battery-critical", Severity.ERROR,
        f"{band.info.serial}'s battery is at {status.battery_pct:.0f}% ({where})",
        "At a critical charge the band shows the critical-charge image, vibrates and shuts "
        "down; a blank screen can mean a flat battery.",
        "Put the band on its charger for at least 30 minutes before using it (it may show the "
        "critical-charge image for several minutes first); charge it at the end of each shift.",
        "Managing Nymi Band 2.0 battery life",
        (_item("band", "battery_pct", round(status.battery_pct, 1)),
         _item("band", "on_charger", status.on_charger),
         _item("band", "power", status.power.value)))


@rule("suspended", Severity.WARNING, "The band is suspended at the NES")
def suspended(e: Evidence) -> Finding | None:
    server = _server(e)
    if server is None or server.band is None or server.band.assignment is None:
        return None
    owner = server.owner
    row = server.band.assignment
    if row.is_active or (owner is not None and owner.active_band is not None):
        return None  # another band being active is a replacement or a temporary band
    return Finding(
        "suspended", Severity.WARNING,
        f"{row.serial} is suspended: it is not active for {server.band.owner}",
        "\"Is Active\" is cleared on the band's page. The user can still authenticate to the "
        "band, but tap tasks such as e-signature or unlocking a terminal are refused."
        + (f" Notes: \"{row.notes}\"." if row.notes else ""),
        "To give the band back, an administrator ticks \"Is Active\" on the Nymi Band page "
        "and saves; if it was lost or broken, enroll a replacement band instead.",
        "Suspending the Active Nymi Band for a User",
        (_item("server", "is_active", row.is_active),
         _item("server", "is_primary", row.is_primary),
         _item("server", "notes", row.notes),
         _item("server", "owner's active band",
               None if owner is None or owner.active_band is None else owner.active_band.serial)))


def _band_credentials(fido2: Fido2Evidence) -> set[str] | None:
    if fido2.credentials is None:
        return None
    return {c.credential_id for c in fido2.credentials}


@rule("fido2-key-missing", Severity.ERROR,
      "A FIDO2 security key recorded at the NES is not on the band")
def fido2_key_missing(e: Evidence) -> Finding | None:
    band, server, fido2 = _band(e), _server(e), e.fido2.data
    if band is None or server is None or fido2 is None or server.owner is None:
        return None
    on_band = _band_credentials(fido2)
    if on_band is None:
        return None
    owner = server.owner.account
    keys = [k for k in server.fido2_keys if k.account == owner]
    by_rp: dict[str, list[str]] = {}
    for key in keys:
        by_rp.setdefault(key.rp_id, []).append(key.credential_id)
    missing = sorted(rp for rp, ids in by_rp.items() if not on_band.intersection(ids))
    if not missing:
        return None
    serial = band.info.serial
    elsewhere = sorted({k.serial for k in keys if k.rp_id in missing and k.serial != serial})
    moved = f" (created on {', '.join(elsewhere)})" if elsewhere else ""
    return Finding(
        "fido2-key-missing", Severity.ERROR,
        f"{owner}'s security key for {', '.join(missing)} is not on {serial}{moved}",
        "A FIDO2 security key stays on the band it was created on and is erased by Delete User "
        "Data; signing in with it on this band fails.",
        f"When enrolling to a different band, the user must create the FIDO2 security key "
        f"again on the new band: {owner} re-creates the key for {', '.join(missing)} on "
        f"{serial}.",
        "Managing Nymi Band Re-Enrollments with Self-Service",
        (_item("server", "recorded keys", [
            {"rp_id": k.rp_id, "serial": k.serial, "credential_id": k.credential_id}
            for k in keys if k.rp_id in missing]),
         _item("fido2", "credentials on the band", sorted(on_band)),
         _item("server", "owner", owner)))
