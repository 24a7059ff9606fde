"""Policies (DOMAIN 3.2, 8.3): the installed ones, their defaults, one active group policy,
individual over group, the option names, administration."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from simulator.nes import (
    DEFAULT_GROUP_POLICY,
    NO_INDIVIDUAL_POLICY,
    OPTION_LABELS,
    EnrollmentDestination,
    Nes,
    NesConfig,
    NesConflict,
    NesInvalidInput,
    PolicyKind,
    PolicyOverrides,
    default_settings,
)
from simulator.nes.policy import option_field
from tests.nes.helpers import SELF_SERVICE_ANY, SELF_SERVICE_OWN, U2


def test_installed_policies(nes: Nes) -> None:
    policies = {p.name: p for p in nes.policies()}
    assert set(policies) == {DEFAULT_GROUP_POLICY, "Liveness Detection Disabled",
                             "Corporate Credentials Authentication"}
    group = policies[DEFAULT_GROUP_POLICY]
    assert group.kind is PolicyKind.GROUP and group.is_active
    settings = group.settings()
    assert settings.enrollment_destination is EnrollmentDestination.NES
    assert settings.nba_idle_logout_min == 5
    assert settings.liveness_detection is True
    assert not settings.self_reenroll_own and not settings.self_reenroll_any
    assert not settings.lock_control
    assert policies["Liveness Detection Disabled"].values.set_values() == {
        "liveness_detection": False}
    assert policies["Corporate Credentials Authentication"].values.set_values() == {
        "corporate_credentials": True}


def test_default_liveness_comes_from_configuration(open_nes: Callable[..., Nes]) -> None:
    nes = open_nes(config=NesConfig(default_liveness=False), empty=True)
    assert nes.policy(DEFAULT_GROUP_POLICY).settings().liveness_detection is False


def test_every_option_of_domain_8_3_and_3_2_has_its_printed_name() -> None:
    names = set(OPTION_LABELS.values())
    for label in ("Liveness Detection", "Haptic Feedback on Nymi Bands",
                  "Corporate Credentials Authentication", "Band Label", SELF_SERVICE_OWN,
                  SELF_SERVICE_ANY, "Enable Nymi Lock Control", "Lock When Away",
                  "Unlock When Present"):
        assert label in names
    assert option_field("Allow a user to re-enroll / re-register to any active Nymi Band") == (
        "self_reenroll_any")
    assert option_field("Allow a user to re-enrol to any active Nymi Band") == "self_reenroll_any"
    assert option_field("Allow a user to re-enroll their Nymi Band") == "self_reenroll_own"
    with pytest.raises(NesInvalidInput):
        option_field("Allow everything")


def test_effective_is_individual_over_group(nes: Nes) -> None:
    view = nes.ensure_user(U2)
    assert view.individual_policy is None
    assert view.individual_policy_display == NO_INDIVIDUAL_POLICY == "none[group policy applied]"
    assert nes.effective_policy(U2) == default_settings()
    nes.set_individual_policy(U2, "Liveness Detection Disabled")
    assert nes.user(U2).individual_policy_display == "Liveness Detection Disabled"
    effective = nes.effective_policy(U2)
    assert effective.liveness_detection is False
    assert effective.haptic_feedback is True  # from the group policy
    nes.update_policy(DEFAULT_GROUP_POLICY, {"haptic_feedback": False,
                                             "liveness_detection": True})
    effective = nes.effective_policy(U2)
    assert (effective.haptic_feedback, effective.liveness_detection) == (False, False)
    nes.set_individual_policy(U2, None)
    assert nes.effective_policy(U2).liveness_detection is True


def test_exactly_one_active_group_policy(nes: Nes) -> None:
    copy = nes.create_policy("Plant floor", "group", copy_of=DEFAULT_GROUP_POLICY,
                             values={SELF_SERVICE_OWN: True})
    assert not copy.is_active and copy.settings().self_reenroll_own
    nes.activate_group_policy("Plant floor")
    active = [p.name for p in nes.policies() if p.is_active]
    assert active == ["Plant floor"]
    nes.ensure_user(U2)
    assert nes.effective_policy(U2).self_reenroll_own
    with pytest.raises(NesConflict, match="active group policy"):
        nes.delete_policy("Plant floor")
    with pytest.raises(NesInvalidInput, match="individual policy"):
        nes.activate_group_policy("Liveness Detection Disabled")
    nes.activate_group_policy(DEFAULT_GROUP_POLICY)
    nes.delete_policy("Plant floor")
    assert [p.name for p in nes.policies() if p.is_active] == [DEFAULT_GROUP_POLICY]


def test_self_service_options_nest(nes: Nes) -> None:
    view = nes.update_policy(DEFAULT_GROUP_POLICY, {SELF_SERVICE_ANY: True})
    assert view.settings().self_reenroll_own and view.settings().self_reenroll_any
    view = nes.update_policy(DEFAULT_GROUP_POLICY, {SELF_SERVICE_OWN: False})
    assert not view.settings().self_reenroll_own and not view.settings().self_reenroll_any


def test_individual_policy_administration(nes: Nes) -> None:
    created = nes.create_policy("Self-service", values=PolicyOverrides(self_reenroll_own=True))
    assert created.kind is PolicyKind.INDIVIDUAL
    nes.ensure_user(U2)
    nes.set_individual_policy(U2, "Self-service")
    assert nes.effective_policy(U2).self_reenroll_own
    assert nes.policy("self-service").users == 1  # names are case-insensitive
    with pytest.raises(NesConflict, match="individual policy of 1 user"):
        nes.delete_policy("Self-service")
    nes.update_policy("Self-service", {"self_reenroll_own": None})
    assert nes.policy("Self-service").values.set_values() == {}
    with pytest.raises(NesConflict, match="already exists"):
        nes.create_policy("SELF-SERVICE")
    with pytest.raises(NesInvalidInput, match="group policy"):
        nes.set_individual_policy(U2, DEFAULT_GROUP_POLICY)
    with pytest.raises(NesInvalidInput):
        nes.update_policy(DEFAULT_GROUP_POLICY, {"haptic_feedback": None})
    with pytest.raises(NesInvalidInput, match="between 1 and 1440"):
        nes.update_policy(DEFAULT_GROUP_POLICY, {"nba_idle_logout_min": 0})
    with pytest.raises(NesInvalidInput, match="on or off"):
        nes.update_policy(DEFAULT_GROUP_POLICY, {"Liveness Detection": "maybe"})


def test_labelled_settings() -> None:
    rows = dict(default_settings().labelled())
    assert rows[SELF_SERVICE_OWN] == "disabled"
    assert rows["Enrollment destination"] == "NES"
