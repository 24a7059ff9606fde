"""The enrollment decision on its own (DOMAIN 2.7, 3.2, 3.3, 10.4): every branch, every
configuration choice, the exact messages."""

from __future__ import annotations

import dataclasses

import pytest

from simulator.nes import (
    NOT_FOUND_MESSAGE,
    OTHER_USER_MESSAGE,
    Action,
    LookupOrder,
    NesConfig,
    NotFoundName,
    OtherOwnerRefusal,
    RefusalCode,
    default_settings,
)
from simulator.nes.rules import Holding, decide

ME = "CORP\\tw-user2"
OTHER = "CORP\\tw-user1"
NONE = default_settings()
OWN = dataclasses.replace(NONE, self_reenroll_own=True)
ANY = dataclasses.replace(NONE, self_reenroll_own=True, self_reenroll_any=True)


def held(account: str, serial: str, active: bool = True, primary: bool = True) -> Holding:
    return Holding(account=account, serial=serial, is_active=active, is_primary=primary)


def run(*, band: Holding | None = None, mine: Holding | None = None, seos: bool = False,
        policy=NONE, config: NesConfig | None = None, serial: str = "ACAK-00056"):
    return decide(account=ME, serial=serial, band_holding=band, user_active=mine,
                  band_seos=seos, policy=policy, config=config or NesConfig())


def test_exact_messages() -> None:
    assert NOT_FOUND_MESSAGE.format(user="CORP\\tw-user2") == (
        "A Nymi Band has been assigned to CORP\\tw-user2, however it cannot be found.")
    assert OTHER_USER_MESSAGE == (
        "Cannot perform re-enrollment because the NES policy settings do not allow "
        "re-enrollment of a Nymi Band that is assigned to another user.")


def test_first_enrollment_of_a_free_band_needs_no_option() -> None:
    d = run()
    assert d.allowed and d.action is Action.FIRST


@pytest.mark.parametrize("policy", [NONE, OWN, ANY])
def test_band_of_another_user_needs_the_any_option(policy) -> None:
    d = run(band=held(OTHER, "ACAK-00056"), mine=held(ME, "AAAH-00125"), policy=policy)
    if policy is ANY:
        assert d.allowed and d.action is Action.TAKE_OVER
        assert d.previous_owner == OTHER and d.displaced_serial == "AAAH-00125"
    else:
        assert d.refusal is not None
        assert d.refusal.message == OTHER_USER_MESSAGE
        assert d.refusal.code is RefusalCode.OTHER_USER


def test_seos_band_of_another_user_is_refused_even_with_any() -> None:
    d = run(band=held(OTHER, "ACAK-00056"), seos=True, policy=ANY)
    assert d.refusal is not None and d.refusal.message == OTHER_USER_MESSAGE
    assert d.refusal.code is RefusalCode.SEOS


def test_own_seos_band_may_be_re_enrolled() -> None:
    d = run(band=held(ME, "ACAK-00056"), mine=held(ME, "ACAK-00056"), seos=True, policy=OWN)
    assert d.allowed and d.action is Action.REENROLL_OWN


def test_own_band_without_self_service_gives_not_found() -> None:
    d = run(band=held(ME, "ACAK-00056"), mine=held(ME, "ACAK-00056"))
    assert d.refusal is not None
    assert str(d.refusal) == "A Nymi Band has been assigned to CORP\\tw-user2, however it cannot be found."
    assert d.refusal.code is RefusalCode.NOT_FOUND


def test_user_with_active_band_enrolling_free_band() -> None:
    refused = run(mine=held(ME, "AAAH-00125"))
    assert refused.refusal is not None and refused.refusal.code is RefusalCode.NOT_FOUND
    allowed = run(mine=held(ME, "AAAH-00125"), policy=OWN)
    assert allowed.action is Action.SELF_SERVICE_FREE
    assert allowed.displaced_serial == "AAAH-00125"


def test_own_band_not_active_is_refused_even_with_self_service() -> None:
    d = run(band=held(ME, "ACAK-00056", active=False), policy=ANY)
    assert d.refusal is not None and d.refusal.code is RefusalCode.NOT_ACTIVE


def test_any_option_alone_implies_own() -> None:
    only_any = dataclasses.replace(NONE, self_reenroll_any=True)
    d = run(band=held(OTHER, "ACAK-00056"), policy=only_any)
    assert d.action is Action.TAKE_OVER


def test_lookup_order_decides_which_message_when_both_apply() -> None:
    kwargs = {"band": held(OTHER, "ACAK-00056"), "mine": held(ME, "AAAH-00125")}
    band_first = run(**kwargs)
    assert band_first.refusal is not None and band_first.refusal.message == OTHER_USER_MESSAGE
    user_first = run(config=NesConfig(lookup_order=LookupOrder.USER_FIRST), **kwargs)
    assert user_first.refusal is not None
    assert user_first.refusal.message == NOT_FOUND_MESSAGE.format(user=ME)


@pytest.mark.parametrize(("name", "expected"), [
    (NotFoundName.BAND_OWNER, OTHER), (NotFoundName.REQUESTING_USER, ME)])
def test_not_found_name_is_configurable(name: NotFoundName, expected: str) -> None:
    config = NesConfig(other_owner_refusal=OtherOwnerRefusal.NOT_FOUND, not_found_name=name)
    d = run(band=held(OTHER, "ACAK-00056"), config=config)
    assert d.refusal is not None
    assert d.refusal.message == f"A Nymi Band has been assigned to {expected}, however it cannot be found."
    assert d.refusal.code is RefusalCode.OTHER_USER


def test_default_names_the_band_owner() -> None:
    assert NesConfig().not_found_name is NotFoundName.BAND_OWNER
