"""DOMAIN.md 10.3 rules 1-9, for every fixture that has the feature.

Screen strings and haptic patterns are the documented ones (DOMAIN.md 1.1, 1.3, 1.6, 1.7, 10.5).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from nymi_device.errors import InvalidInputError, PhysicalActionError
from nymi_device.protocol.model import AuthState, Button, EnrollmentState, PowerState
from simulator.band.records import BandPolicy
from simulator.fixtures import Fixture
from tests.simulator.band_helpers import (
    FIXTURES,
    enroll,
    fixtures_where,
    haptics_since,
    make_band,
    screens_since,
)

ALL = pytest.mark.parametrize("fixture", FIXTURES, ids=lambda f: f.id)
DUD = pytest.mark.parametrize(
    "fixture", fixtures_where(lambda f: f.capabilities.wipe_gesture == "delete-user-data"),
    ids=lambda f: f.id)
WIPE_2 = pytest.mark.parametrize(
    "fixture", fixtures_where(lambda f: f.capabilities.wipe_gesture == "security-wipe"),
    ids=lambda f: f.id)
LIVENESS = pytest.mark.parametrize(
    "fixture", fixtures_where(lambda f: f.capabilities.liveness), ids=lambda f: f.id)
BAND_30_UI = pytest.mark.parametrize(
    "fixture", fixtures_where(lambda f: f.capabilities.failure_ui == "band-3.0"),
    ids=lambda f: f.id)
CORPORATE = pytest.mark.parametrize(
    "fixture", fixtures_where(lambda f: f.capabilities.corporate_credentials),
    ids=lambda f: f.id)
RESTART = pytest.mark.parametrize(
    "fixture", fixtures_where(lambda f: f.capabilities.restart_gesture), ids=lambda f: f.id)


# -- rule 1: unenrolled band ---------------------------------------------------------------

@ALL
def test_unenrolled_band_shows_no_user_off_body_and_setup_code_when_worn(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    assert band.screen == "No User"
    band.put_on()
    assert band.screen == "Setup code"
    assert band.enrollment == EnrollmentState.SETUP_CODE_SHOWN
    assert band.setup_code is not None and len(band.setup_code) == 6
    assert all(c.isdigit() or "A" <= c <= "Z" for c in band.setup_code)
    band.take_off()
    assert band.screen == "No User"
    assert band.enrollment == EnrollmentState.UNENROLLED


# -- rule 2: enrollment ------------------------------------------------------------------------

@ALL
def test_enrollment_alternates_lift_and_touch_then_succeeds_with_two_buzzes(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    band.put_on()
    band.enter_setup_code(band.setup_code.lower() if band.setup_code else "")
    assert band.screen == "Add User"
    mark = len(band.events)
    band.start_capture()
    touches = fixture.limits.enrollment_touches
    for _ in range(touches):
        band.place_finger()
        band.settle()
    assert screens_since(band, mark) == (
        ["TOUCH SENSOR"] + ["LIFT FINGER", "TOUCH SENSOR"] * (touches - 1) + ["Success"])
    assert band.captured_samples == touches
    assert band.enrollment == EnrollmentState.LABELING
    assert band.set_label("tw-user2 ñ") == "TW-USER2 ?"
    mark = len(band.events)
    band.apply_policy(BandPolicy(liveness=True, haptics=True))
    band.settle()
    assert screens_since(band, mark) == ["Success", "Authenticated"]
    assert haptics_since(band, mark) == ["double-quick"]
    assert band.enrollment == EnrollmentState.ENROLLED
    assert band.auth == AuthState.AUTHENTICATED
    assert band.user.band_label == "TW-USER2 ?"
    assert band.user.template is not None


@ALL
def test_wrong_setup_code_is_refused_and_changes_nothing(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    band.put_on()
    with pytest.raises(InvalidInputError, match="setup code"):
        band.enter_setup_code("WRONG1")
    assert band.screen == "Setup code"
    assert band.enrollment == EnrollmentState.SETUP_CODE_SHOWN


def test_band_label_follows_the_documented_rules(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0], tmp_path)
    band.put_on()
    band.enter_setup_code(band.setup_code or "")
    band.start_capture()
    for _ in range(band.fixture.limits.enrollment_touches):
        band.place_finger()
        band.settle()
    # Upper case, at most 12 characters, no surrounding spaces, '?' for unsupported characters,
    # the backtick is allowed (DOMAIN.md 2.3).
    assert band.set_label("  Line 4 `Ops` – night shift ") == "LINE 4 `OPS`"


@ALL
def test_removing_the_band_during_enrollment_aborts_it(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    band.put_on()
    band.enter_setup_code(band.setup_code or "")
    band.start_capture()
    band.place_finger()
    band.settle()
    band.take_off()
    assert band.enrollment == EnrollmentState.UNENROLLED
    assert band.screen == "No User"
    assert band.storage.keys("user/") == []


def test_enrollment_with_haptics_off_does_not_vibrate(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0], tmp_path)
    mark = len(band.events)
    enroll(band, policy=BandPolicy(liveness=True, haptics=False))
    assert band.auth == AuthState.AUTHENTICATED
    assert haptics_since(band, mark) == []


# -- rule 3: authentication on the wrist ------------------------------------------------------

@ALL
def test_matching_finger_authenticates(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.take_off()
    band.put_on()
    assert band.screen == "Authentication Required"
    mark = len(band.events)
    band.place_finger(match=True)
    assert band.screen == "Authentication In Progress"
    band.settle()
    assert screens_since(band, mark) == ["Authentication In Progress", "Success", "Authenticated"]
    assert band.is_authenticated


@BAND_30_UI
def test_mismatch_reports_no_match_after_about_a_second_then_advice(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band, policy=BandPolicy(liveness=False))
    band.take_off()
    band.put_on()
    expected = ["NO MATCH", "NO MATCH", "NO MATCH",
                "CENTER FINGER", "WASH & DRY HAND & WRIST", "CLEAN BAND"]
    for attempt, message in enumerate(expected[: fixture.limits.lockout_failures - 1], 1):
        mark = len(band.events)
        band.place_finger(match=False)
        band.clock.advance(fixture.timing.fingerprint_match_s - 0.01)
        assert band.screen == "Authentication In Progress"
        band.clock.advance(0.01)
        assert band.screen == message, f"failure {attempt}"
        assert haptics_since(band, mark) == ["single"]
        band.settle()
        assert band.screen == "Authentication Required"
        assert band.auth == AuthState.AUTH_REQUIRED


@LIVENESS
def test_no_steady_ecg_reports_no_ecg_after_about_13_seconds(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band, policy=BandPolicy(liveness=True))
    band.take_off()
    band.put_on()
    messages = []
    for _ in range(4):
        mark = len(band.events)
        band.place_finger(match=True, ecg_ok=False)
        band.clock.advance(12.99)
        assert band.screen == "Authentication In Progress"
        band.clock.advance(0.01)
        messages.append(band.screen)
        assert haptics_since(band, mark) == ["single"]
        band.settle()
    assert messages == ["NO ECG", "NO ECG", "NO ECG", "SIT STILL"]
    assert band.user.liveness_failures == 4
    assert band.user.fingerprint_failures == 0


@LIVENESS
def test_liveness_disabled_by_policy_authenticates_without_ecg(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band, policy=BandPolicy(liveness=False))
    band.take_off()
    band.put_on()
    band.place_finger(match=True, ecg_ok=False)
    band.clock.advance(fixture.timing.fingerprint_match_s)
    assert band.auth == AuthState.AUTHENTICATED


def test_older_firmware_shows_retry_for_every_failure(tmp_path: Path) -> None:
    fixture = fixtures_where(lambda f: f.capabilities.failure_ui == "retry")[0]
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.take_off()
    band.put_on()
    for _ in range(4):
        band.place_finger(match=False)
        band.clock.advance(fixture.timing.fingerprint_match_s)
        assert band.screen == "Retry"
        band.settle()


@ALL
def test_consecutive_failures_lock_the_band_until_delete_user_data(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band, policy=BandPolicy(liveness=False))
    band.take_off()
    band.put_on()
    for _ in range(fixture.limits.lockout_failures):
        band.place_finger(match=False)
        band.settle()
    assert band.auth == AuthState.LOCKED_OUT
    assert band.screen == fixture.screens.locked_out
    # A matching finger is refused while locked out, and a restart does not lift the lockout.
    band.place_finger(match=True)
    band.settle()
    assert band.auth == AuthState.LOCKED_OUT
    band.power_cycle()
    assert band.auth == AuthState.LOCKED_OUT and band.user.locked_out
    band.take_off()
    band.attach_charger()
    band.hold(Button.BOTTOM, fixture.timing.wipe_hold_s)
    band.settle()
    assert not band.user.locked_out
    assert band.enrollment == EnrollmentState.UNENROLLED


def test_a_success_resets_the_failure_streak(tmp_path: Path) -> None:
    fixture = FIXTURES[0]
    band = make_band(fixture, tmp_path)
    enroll(band, policy=BandPolicy(liveness=False))
    band.take_off()
    band.put_on()
    for _ in range(3):
        band.place_finger(match=False)
        band.settle()
    band.place_finger(match=True)
    band.settle()
    assert band.user.fingerprint_failures == 0
    band.take_off()
    band.put_on()
    band.place_finger(match=False)
    band.clock.advance(fixture.timing.fingerprint_match_s)
    assert band.screen == fixture.screens.no_match


# -- rule 4: corporate credentials ---------------------------------------------------------

@CORPORATE
def test_corporate_sign_in_authenticates_a_worn_band(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band, corporate=True)
    band.take_off()
    band.put_on()
    band.corporate_login(ok=False)
    assert band.auth == AuthState.AUTH_REQUIRED
    band.corporate_login(ok=True)
    assert band.is_authenticated


def test_corporate_sign_in_needs_the_authenticator(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0], tmp_path)
    enroll(band, corporate=False)
    band.take_off()
    band.put_on()
    with pytest.raises(PhysicalActionError, match="corporate"):
        band.corporate_login(ok=True)


# -- rule 5: removal deauthenticates --------------------------------------------------------

@ALL
def test_removal_deauthenticates_with_one_vibration(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    mark = len(band.events)
    band.take_off()
    assert band.auth == AuthState.DEAUTHENTICATED
    assert haptics_since(band, mark) == ["single"]
    band.put_on()
    assert band.screen == "Authentication Required"
    assert not band.is_authenticated


# -- rule 6: Delete User Data (Band 3.0) -----------------------------------------------------

@DUD
def test_delete_user_data_wipes_everything_with_two_quick_buzzes(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band, corporate=fixture.capabilities.corporate_credentials)
    band.take_off()
    band.attach_charger()
    mark = len(band.events)
    band.press(Button.BOTTOM)
    assert band.screen == "Delete User Data"
    band.clock.advance(fixture.timing.wipe_hold_s - 0.01)
    assert band.enrollment == EnrollmentState.ENROLLED
    band.clock.advance(0.01)
    band.release(Button.BOTTOM)
    assert screens_since(band, mark) == ["Delete User Data", "USER DATA DELETED"]
    assert haptics_since(band, mark) == ["double-quick"]
    assert band.enrollment == EnrollmentState.UNENROLLED
    assert band.user.template is None and band.user.band_label is None
    assert not band.user.corporate_authenticator and band.user.policy is None
    assert band.storage.keys("user/") == []
    assert band.storage.get("device/identity") is not None


@DUD
def test_delete_user_data_released_early_changes_nothing(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.take_off()
    band.attach_charger()
    before = band.storage.snapshot()
    band.hold(Button.BOTTOM, fixture.timing.wipe_hold_s - 0.5)
    assert band.enrollment == EnrollmentState.ENROLLED
    assert band.storage.snapshot() == before
    assert band.screen != "USER DATA DELETED"


@DUD
@pytest.mark.parametrize("where", ["on-wrist", "off-charger"])
def test_delete_user_data_needs_off_wrist_and_on_charger(
        fixture: Fixture, where: str, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    if where == "off-charger":
        band.take_off()
    else:
        band.attach_charger()
    band.hold(Button.BOTTOM, 15)
    band.settle()
    assert band.enrollment == EnrollmentState.ENROLLED
    assert band.screen != "Delete User Data"


def test_delete_user_data_follows_the_haptics_policy(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0], tmp_path)
    enroll(band, policy=BandPolicy(haptics=False))
    band.take_off()
    band.attach_charger()
    mark = len(band.events)
    band.hold(Button.BOTTOM, 10)
    assert band.screen == "USER DATA DELETED"
    assert haptics_since(band, mark) == []


# -- rule 7: security wipe (Band 2.0) --------------------------------------------------------

@WIPE_2
def test_security_wipe_runs_after_release(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.take_off()
    band.attach_charger()
    band.press(Button.BOTTOM)
    band.clock.advance(fixture.timing.wipe_hold_s)
    assert band.screen == "SECURITY WIPE"
    assert band.enrollment == EnrollmentState.ENROLLED
    band.release(Button.BOTTOM)
    band.clock.advance(fixture.timing.wipe_run_s - 0.5)
    assert band.enrollment == EnrollmentState.ENROLLED
    band.clock.advance(0.5)
    assert band.enrollment == EnrollmentState.UNENROLLED
    assert band.storage.keys("user/") == []
    assert band.screen == "No User"


@WIPE_2
def test_security_wipe_released_early_changes_nothing(fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.take_off()
    band.attach_charger()
    band.hold(Button.BOTTOM, fixture.timing.wipe_hold_s - 1)
    band.settle()
    assert band.enrollment == EnrollmentState.ENROLLED


# -- rule 8: restart (Band 2.0) ----------------------------------------------------------------

@RESTART
def test_restart_keeps_enrollment_and_drops_authentication(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.take_off()
    band.attach_charger()
    band.press(Button.TOP)
    band.clock.advance(fixture.timing.restart_hold_s)
    assert band.screen == "RESTART"
    band.release(Button.TOP)
    band.clock.advance(fixture.timing.restart_run_s)
    assert band.enrollment == EnrollmentState.ENROLLED
    assert band.auth == AuthState.DEAUTHENTICATED
    assert band.user.band_label == "TW-USER2"
    band.detach_charger()
    band.put_on()
    assert band.screen == "Authentication Required"


def test_band_30_has_no_restart_gesture(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0] if not FIXTURES[0].capabilities.restart_gesture
                     else FIXTURES[2], tmp_path)
    band.attach_charger()
    band.hold(Button.TOP, 15)
    assert band.screen != "RESTART"


# -- rule 9: battery, sleep -------------------------------------------------------------------

@ALL
def test_critical_battery_shuts_down_and_needs_30_minutes_of_charge(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    enroll(band)
    band.set_battery(fixture.battery.critical_pct + 1)
    drain_s = fixture.battery.capacity_hours * 3600 / 100
    mark = len(band.events)
    band.clock.advance(drain_s * 0.99)
    assert band.power == PowerState.AWAKE
    band.clock.advance(drain_s * 0.02)
    assert band.power == PowerState.OFF
    assert "Critical Battery" in screens_since(band, mark)
    assert haptics_since(band, mark) == ["single"]
    assert band.auth == AuthState.DEAUTHENTICATED
    with pytest.raises(PhysicalActionError, match="off"):
        band.press(Button.TOP)
    band.take_off()
    band.attach_charger()
    band.clock.advance(fixture.battery.critical_recharge_s - 1)
    assert band.power == PowerState.OFF
    # The level passes the restart threshold long before 30 minutes; time is what gates it.
    assert band.battery_pct >= fixture.battery.restart_pct
    band.clock.advance(1)
    assert band.power == PowerState.AWAKE
    assert band.enrollment == EnrollmentState.ENROLLED


@ALL
def test_idle_band_off_the_wrist_sleeps_and_a_button_wakes_it(
        fixture: Fixture, tmp_path: Path) -> None:
    band = make_band(fixture, tmp_path)
    band.clock.advance(fixture.timing.sleep_after_s + 1)
    assert band.power == PowerState.SLEEP
    assert band.screen == "Blank Screen"
    band.hold(Button.TOP, 0.2)
    assert band.power == PowerState.AWAKE
    assert band.screen == "No User"


def test_band_on_the_wrist_does_not_sleep(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0], tmp_path)
    enroll(band)
    band.clock.advance(3600)
    assert band.power == PowerState.AWAKE and band.is_authenticated


def test_charging_fills_the_battery(tmp_path: Path) -> None:
    band = make_band(FIXTURES[0], tmp_path)
    band.set_battery(50)
    band.attach_charger()
    band.clock.advance(band.fixture.battery.charge_hours * 3600)
    assert band.battery_pct == 100
