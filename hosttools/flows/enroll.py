"""Enrollment, registration and self-service re-enrollment: the Nymi Band Application's steps.

Each flow asks the enterprise server first, so a refusal leaves the band untouched; the band's
steps come next (the physical ones done by the operator and confirmed by the band, the
application's over the band's enrollment channel), and the server is written last, in one
transaction. A flow that stopped half-way (band removed, server unreachable, process killed) is
recovered by running it again: each step looks at what is already done, and the result's
``repaired`` list says what was found and fixed.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hosttools.flows.bands import FlowBand, PreconditionError, Report
from hosttools.flows.delete_user_data import delete_user_data
from nymi_device.backend import Feature
from nymi_device.errors import BandError
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.model import EnrollmentState
from nymi_device.protocol.nes import (
    BandFacts,
    EffectivePolicy,
    EnrollmentAnswer,
    NesClient,
    NesRefusal,
    RefusalCode,
)
from nymi_device.protocol.operator import PhysicalStep

AfterStep = Callable[[str], None]


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


def sign_in(nes: NesClient, account: str, password: str) -> str:
    """The NBA's sign-in with directory credentials; returns the canonical account."""
    user = nes.directory.authenticate(account, password)
    if user is None:
        raise SignInError(f"sign-in refused for {account}: unknown user or wrong password")
    nes.ensure_user(user.account, actor=user.account)
    return str(user.account)


def band_facts(band: FlowBand) -> BandFacts:
    """What the NBA reads from the band it enrolls: from the band's own identity."""
    info, caps = band.info, band.info.capabilities
    return BandFacts(serial=info.serial, device_id=info.device_id or info.serial,
                     seos_enabled=bool(caps.get("seos")),
                     secure_nfc=bool(caps.get("secure_nfc")), nfc_id=info.nfc_id or None,
                     liveness_configurable=info.generation != "2.0")


class _Steps:
    """A flow's result and report together: every step is listed and reported once."""

    def __init__(self, result: EnrollResult, report: Report) -> None:
        self.result, self._report = result, report

    def __call__(self, title: str, detail: dict[str, Any]) -> None:
        self.result.steps.append(title)
        self._report(title, detail)


def wipe_if_orphaned(band: FlowBand, answer: EnrollmentAnswer, result: EnrollResult,
                     steps: _Steps) -> None:
    """A band that holds an enrollment no NES record explains was left by an interrupted run:
    delete its user data (off the wrist, on the charger) before enrolling."""
    if band.status().enrollment != EnrollmentState.ENROLLED:
        return
    action = None if answer.action is None else str(answer.action.value)
    if action == "re-enroll-own-band":
        return  # the user's own band: the server record is completed below
    if action == "self-service-band-of-another-user":
        raise PreconditionError(
            f"band {band.serial} still holds user data: delete user data before enrolling it "
            "(Delete User Data is mandatory before any re-enrollment)")
    wipe_band(band, steps)
    result.repaired.append(f"band {band.serial} held an enrollment the server never recorded "
                           "(an earlier run stopped before the server was updated); its user "
                           "data was deleted and it was enrolled again")


def wipe_band(band: FlowBand, steps: Report) -> None:
    """Delete User Data as part of a flow: the operator prepares the band first."""
    delete_user_data(band, steps, prepare=True)


def _check(nes: NesClient, account: str, serial: str) -> EnrollmentAnswer:
    check = nes.check_enrollment(account, serial)
    if not check.allowed:
        raise NesRefusal(str(check.message), RefusalCode(check.code or ""))
    return check


def enroll(band: FlowBand, nes: NesClient, account: str, password: str, report: Report, *,
           label: str | None = None, after_step: AfterStep | None = None) -> EnrollResult:
    """Enroll ``band`` to ``account`` at ``nes`` as the Nymi Band Application does."""
    band.require(Feature.STATUS, Feature.ENROLLMENT, why="enrollment")
    account = sign_in(nes, account, password)
    result = EnrollResult(account, band.serial, nes.name)
    steps = _Steps(result, report)
    answer = _check(nes, account, band.serial)
    steps(f"Signed in to the Nymi Band Application as {account}", {})
    return _enroll_signed_in(band, nes, result, steps, answer, label,
                             after_step or (lambda step: None))


def _enroll_signed_in(band: FlowBand, nes: NesClient, result: EnrollResult, steps: _Steps,
                      answer: EnrollmentAnswer, label: str | None,
                      after: AfterStep) -> EnrollResult:
    account = result.account
    policy = nes.effective_policy(account)
    wipe_if_orphaned(band, answer, result, steps)
    after("checked")
    if band.status().enrollment == EnrollmentState.ENROLLED:
        result.repaired.append(f"band {band.serial} was already enrolled for {account}; "
                               "the server record was completed")
    else:
        _enroll_band(band, policy, label or account.split("\\")[-1], result, steps, after)
        after("band-enrolled")
    done = nes.enroll(account, band_facts(band), label=result.label,
                      expected_band_version=answer.band_version)
    after("recorded")
    result.action = str(done.action.value)
    result.user = done.user.to_json()
    steps(f"Recorded at {nes.name}: {band.serial} is {account}'s active band",
          {"action": result.action})
    return result


def _enroll_band(band: FlowBand, policy: EffectivePolicy, label: str, result: EnrollResult,
                 steps: _Steps, after: AfterStep) -> None:
    state = band.status()
    if state.enrollment not in (EnrollmentState.UNENROLLED, EnrollmentState.SETUP_CODE_SHOWN):
        # An enrollment left half-way by an earlier run: the band starts over when it is
        # taken off and put on again.
        band.do(PhysicalStep.TAKE_OFF, steps)
    band.do(PhysicalStep.UNCHARGE, steps)
    band.do(PhysicalStep.WEAR, steps, "Wear the band")
    code = band.do(PhysicalStep.READ_SETUP_CODE, steps, "Read the setup code off the band")
    assert code is not None and code.text is not None
    band.band.enter_setup_code(code.text)
    shown = band.status().screen
    steps(f"Type the setup code {code.text}: the band shows '{shown}'", {"screen": shown})
    touches = band.band.start_capture()
    for touch in range(1, touches + 1):
        band.do(PhysicalStep.TOUCH_SENSOR, steps, f"Fingerprint touch {touch}/{touches}")
    after("captured")
    result.label = band.band.set_label(label if policy.band_label else None)
    if policy.corporate_credentials:
        band.band.add_corporate_authenticator()
        steps("Corporate credential authenticator written to the band", {})
    mark = band.band.event_mark() if band.has(Feature.EVENTS) else 0
    band.band.apply_policy(PolicySettings(liveness=policy.liveness_detection,
                                          haptics=policy.haptic_feedback))
    status = band.status()
    if status.enrollment != EnrollmentState.ENROLLED:
        raise PreconditionError(f"band {band.serial} did not finish its enrollment: it shows "
                                f"'{status.screen}'")
    result.label = status.band_label
    if result.label:
        steps(f"Band Label '{result.label}' (as the band shows it)", {})
    events = band.band.events_since(mark)[0] if band.has(Feature.EVENTS) else []
    screens = [str(e.data["screen"]) for e in events if e.kind == "screen"]
    vibrations = [str(e.data["pattern"]) for e in events if e.kind == "haptic"]
    steps("Policy applied: " + " -> ".join(screens or [status.screen]) +
          (f", vibrates {', '.join(vibrations)}" if vibrations else ""),
          {"screens": screens, "haptics": vibrations})


def register(band: FlowBand, registration: NesClient, account: str, password: str,
             report: Report, *, enrolled_at: str | None = None) -> EnrollResult:
    """Record an enrolled band for ``account`` at the Registration NES (IT/OT)."""
    band.require(Feature.STATUS, why="registration")
    account = sign_in(registration, account, password)
    result = EnrollResult(account, band.serial, registration.name)
    if band.status().enrollment != EnrollmentState.ENROLLED:
        raise PreconditionError(f"band {band.serial} is not enrolled: enroll it before "
                                "registering it")
    done = registration.register(account, band_facts(band), enrolled_at_nes=enrolled_at)
    result.action = str(done.action.value)
    result.user = done.user.to_json()
    _Steps(result, report)(f"Registered {band.serial} for {account} at {registration.name}", {})
    return result


def reenroll(band: FlowBand, nes: NesClient, account: str, password: str, report: Report, *,
             registration: NesClient | None = None, label: str | None = None,
             after_step: AfterStep | None = None) -> EnrollResult:
    """Self-service re-enrollment: check, Delete User Data, enroll (and register)."""
    after = after_step or (lambda step: None)
    band.require(Feature.STATUS, Feature.ENROLLMENT, why="re-enrollment")
    canonical = sign_in(nes, account, password)
    answer = _check(nes, canonical, band.serial)
    result = EnrollResult(canonical, band.serial, nes.name)
    steps = _Steps(result, report)
    steps(f"Signed in to the Nymi Band Application as {canonical}", {})
    if band.status().enrollment == EnrollmentState.UNENROLLED:
        result.repaired.append(f"band {band.serial} had no user data: its Delete User Data "
                               "was already done (an earlier run stopped after it)")
    else:
        wipe_band(band, steps)
    after("wiped")
    # The band is wiped now: what the server said about it still holds (the band's record did
    # not change), except that no user data of anyone is on it any more.
    _enroll_signed_in(band, nes, result, steps, answer, label, after)
    if registration is not None:
        registered = register(band, registration, canonical, password, report,
                              enrolled_at=nes.name)
        result.steps.extend(registered.steps)
    return result
