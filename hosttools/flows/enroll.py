"""Enrollment, registration and self-service re-enrollment: the Nymi Band Application's steps.

DOMAIN.md 2.2 (enrollment), 2.6 (registration), 3.2-3.4 (self-service). Each flow asks the NES
first, so a refusal leaves the band untouched; the band's steps come next, and the NES is written
last, in one transaction. A flow that stopped half-way (band removed, server unreachable, process
killed) is recovered by running it again: each step looks at what is already done, and the
result's ``repaired`` list says what was found and fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hosttools.flows.bands import FlowBand, Report
from hosttools.flows.delete_user_data import PreconditionError
from nymi_device.errors import BandError
from simulator.nes import Nes
from simulator.nes.enrollment import BandFacts
from simulator.nes.errors import NesRefusal


class SignInError(BandError, PermissionError):
    """The directory did not accept the user name and password."""


@dataclass
class EnrollResult:
    account: str
    serial: str
    nes: str
    action: str = ""
    label: str | None = None
    steps: list[str] = field(default_factory=list)
    repaired: list[str] = field(default_factory=list)
    user: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def sign_in(nes: Nes, account: str, password: str) -> str:
    """The NBA's sign-in with directory credentials; returns the canonical account."""
    user = nes.directory.authenticate(account, password)
    if user is None:
        raise SignInError(f"sign-in refused for {account}: unknown user or wrong password")
    nes.ensure_user(user.account, actor=user.account)
    return str(user.account)


def band_facts(band: FlowBand) -> BandFacts:
    info = band.info if hasattr(band, "info") else {}
    caps = info.get("capabilities", {})
    return BandFacts(serial=band.serial, device_id=str(info.get("device_id", band.serial)),
                     seos_enabled=bool(caps.get("seos")), secure_nfc=bool(caps.get("secure_nfc")),
                     nfc_id=info.get("nfc_id"),
                     liveness_configurable=info.get("generation") != "2.0")


def _step(result: EnrollResult, report: Report, title: str, detail: dict[str, Any]) -> None:
    result.steps.append(title)
    report(title, detail)


def wipe_if_orphaned(band: FlowBand, nes: Nes, account: str, result: EnrollResult,
                     report: Report) -> None:
    """A band that holds an enrollment no NES record explains was left by an interrupted run:
    delete its user data (taking it off the wrist and charging it first) before enrolling."""
    state = band.state()
    if state["state"]["enrollment"] != "enrolled":
        return
    owner = nes.band(band.serial).owner if band.serial in {b.serial for b in nes.bands(
        band.serial)} else None
    if owner == account:
        return
    if owner is not None:
        raise PreconditionError(
            f"band {band.serial} still holds user data: delete user data before enrolling it "
            "(Delete User Data is mandatory before any re-enrollment)")
    wipe_band(band, result, report)
    result.repaired.append(f"band {band.serial} held an enrollment the server never recorded "
                           "(an earlier run stopped before the server was updated); its user "
                           "data was deleted and it was enrolled again")


def wipe_band(band: FlowBand, result: EnrollResult, report: Report) -> None:
    """Delete User Data as part of a flow: the flow performs the physical preparation."""
    from hosttools.flows.delete_user_data import delete_user_data

    state = band.state()["state"]
    if state["on_wrist"]:
        _step(result, report, "Take the band off the wrist", band.physical("remove"))
    if not state["on_charger"]:
        _step(result, report, "Put the band on its charger", band.physical("charge"))
    wiped = delete_user_data(band, report)
    result.steps.append(f"Delete User Data: {' -> '.join(wiped.screens)}")


def enroll(band: FlowBand, nes: Nes, account: str, password: str, report: Report, *,
           label: str | None = None,
           after_step: Callable[[str], None] | None = None) -> EnrollResult:
    """Enroll ``band`` to ``account`` at ``nes`` as the Nymi Band Application does."""
    after = after_step or (lambda step: None)
    account = sign_in(nes, account, password)
    result = EnrollResult(account, band.serial, nes.name)
    _step(result, report, f"Signed in to the Nymi Band Application as {account}", {})
    check = nes.check_enrollment(account, band.serial)
    if not check.allowed:
        raise NesRefusal(str(check.message), _refusal_code(check.code))
    policy = nes.effective_policy(account)
    wipe_if_orphaned(band, nes, account, result, report)
    after("checked")

    state = band.state()
    if state["state"]["enrollment"] == "enrolled":
        result.repaired.append(f"band {band.serial} was already enrolled for {account}; "
                               "the server record was completed")
    else:
        _enroll_band(band, policy, label or account.split("\\")[-1], result, report, after)
        after("band-enrolled")
    facts = band_facts(band)
    done = nes.enroll(account, facts, label=result.label,
                      expected_band_version=check.band_version)
    after("recorded")
    result.action = done.action.value
    result.user = done.user.to_json() if hasattr(done.user, "to_json") else {}
    _step(result, report, f"Recorded at {nes.name}: {band.serial} is {account}'s active band",
          {"action": result.action})
    return result


def _enroll_band(band: FlowBand, policy: Any, label: str, result: EnrollResult,
                 report: Report, after: Callable[[str], None]) -> None:
    state = band.state()["state"]
    if state["on_charger"]:
        _step(result, report, "Take the band off its charger", band.physical("uncharge"))
    if not state["on_wrist"]:
        worn = band.physical("wear")
        _step(result, report, f"Wear the band: it shows '{worn['screen']}'", worn)
    code = band.state().get("setup_code")
    if not code:
        raise PreconditionError(f"band {band.serial} shows no setup code "
                                f"(it shows '{band.state()['screen']}')")
    added = band.application("enter-setup-code", code=code)
    _step(result, report, f"Type the setup code {code}: the band shows '{added['screen']}'",
          added)
    band.application("start-capture")
    touches = int(band.fixture_value("limits", "enrollment_touches"))
    for touch in range(1, touches + 1):
        sample = band.physical("finger", match=True)
        _step(result, report, f"Fingerprint touch {touch}/{touches}: "
                              f"{' -> '.join(sample['screens'])}", sample)
    after("captured")
    if policy.band_label:
        band.application("set-label", label=label)
    else:
        band.application("set-label", label=None)
    if policy.corporate_credentials:
        band.application("add-corporate-authenticator")
        _step(result, report, "Corporate credential authenticator written to the band", {})
    applied = band.application("apply-policy", liveness=policy.liveness_detection,
                               haptics=policy.haptic_feedback)
    result.label = applied["state"]["band_label"]
    if result.label:
        _step(result, report, f"Band Label '{result.label}' (as the band shows it)", {})
    _step(result, report, "Policy applied: " + " -> ".join(applied["screens"]) +
          (f", vibrates {', '.join(applied['haptics'])}" if applied["haptics"] else ""), applied)


def register(band: FlowBand, registration: Nes, account: str, password: str, report: Report,
             *, enrolled_at: str | None = None) -> EnrollResult:
    """Record an enrolled band for ``account`` at the Registration NES (DOMAIN 2.6)."""
    account = sign_in(registration, account, password)
    result = EnrollResult(account, band.serial, registration.name)
    state = band.state()["state"]
    if state["enrollment"] != "enrolled":
        raise PreconditionError(f"band {band.serial} is not enrolled: enroll it before "
                                "registering it")
    done = registration.register(account, band_facts(band), enrolled_at_nes=enrolled_at)
    result.action = done.action.value
    result.user = done.user.to_json()
    _step(result, report, f"Registered {band.serial} for {account} at {registration.name}", {})
    return result


def reenroll(band: FlowBand, nes: Nes, account: str, password: str, report: Report, *,
             registration: Nes | None = None, label: str | None = None,
             after_step: Callable[[str], None] | None = None) -> EnrollResult:
    """Self-service re-enrollment (DOMAIN 3.4): check, Delete User Data, enroll (and register)."""
    after = after_step or (lambda step: None)
    canonical = sign_in(nes, account, password)
    check = nes.check_enrollment(canonical, band.serial)
    if not check.allowed:
        raise NesRefusal(str(check.message), _refusal_code(check.code))
    result = EnrollResult(canonical, band.serial, nes.name)
    state = band.state()
    if state["state"]["enrollment"] == "unenrolled":
        result.repaired.append(f"band {band.serial} had no user data: its Delete User Data "
                               "was already done (an earlier run stopped after it)")
    else:
        wipe_band(band, result, report)
    after("wiped")
    enrolled = enroll(band, nes, canonical, password, report, label=label, after_step=after)
    enrolled.repaired[:0] = result.repaired
    enrolled.steps[:0] = result.steps
    if registration is not None:
        registered = register(band, registration, canonical, password, report,
                              enrolled_at=nes.name)
        enrolled.steps.extend(registered.steps)
    return enrolled


def _refusal_code(code: str | None) -> Any:
    from simulator.nes.errors import RefusalCode

    try:
        return RefusalCode(code or "")
    except ValueError:
        return RefusalCode.POLICY
