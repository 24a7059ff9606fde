"""Who may enroll (or register) which band: the rules of DOMAIN.md 2.7, 3.2 to 3.4, 10.4.

:func:`decide` is pure: it sees the band's present association, the user's active band, the
band's SEOS flag, the user's effective policy and the server configuration, and answers with the
action to take or the refusal to give, with the exact documented message. The service layer
(:mod:`simulator.nes.enrollment`) gathers those facts inside the write transaction and applies
the answer there, so the decision and the change are one atomic step.
"""

from __future__ import annotations

from dataclasses import dataclass

from nymi_device.protocol.nes.enums import Action as Action
from nymi_device.protocol.nes.errors import NesRefusal, RefusalCode
from simulator.nes.config import LookupOrder, NesConfig, NotFoundName, OtherOwnerRefusal
from simulator.nes.policy import PolicySettings

NOT_FOUND_MESSAGE = "A Nymi Band has been assigned to {user}, however it cannot be found."
"""DOMAIN 2.7 / 10.5 (KB 30071134488084, KB 360040822952); ``{user}`` is ``DOMAIN\\username``."""

OTHER_USER_MESSAGE = (
    "Cannot perform re-enrollment because the NES policy settings do not allow re-enrollment of "
    "a Nymi Band that is assigned to another user."
)
"""DOMAIN 2.7 / 10.5 (KB 29585818876820)."""

NOT_ACTIVE_MESSAGE = (
    "The Nymi Band {serial} assigned to {user} is not active (suspended, replaced or set aside "
    "for a temporary band); an NES administrator must reactivate or disconnect it first."
)
"""Ours: self-service must not undo an administrator's suspension (no vendor message known)."""


@dataclass(frozen=True)
class Holding:
    """An existing association, as the decision needs to see it."""

    account: str
    serial: str
    is_active: bool
    is_primary: bool


@dataclass(frozen=True)
class Decision:
    action: Action | None
    refusal: NesRefusal | None
    previous_owner: str | None = None
    """The account whose association with the band is removed (TAKE_OVER)."""
    displaced_serial: str | None = None
    """The user's active band that becomes not active (SELF_SERVICE_FREE, TAKE_OVER)."""

    @property
    def allowed(self) -> bool:
        return self.refusal is None


def _not_found(config: NesConfig, holder: str, requester: str, serial: str) -> NesRefusal:
    name = holder if config.not_found_name is NotFoundName.BAND_OWNER else requester
    return NesRefusal(NOT_FOUND_MESSAGE.format(user=name), RefusalCode.NOT_FOUND,
                      serial=serial, assigned_to=holder)


def _other_owner(config: NesConfig, owner: str, requester: str, serial: str,
                 seos: bool) -> NesRefusal:
    code = RefusalCode.SEOS if seos else RefusalCode.OTHER_USER
    if config.other_owner_refusal is OtherOwnerRefusal.NOT_FOUND:
        refusal = _not_found(config, owner, requester, serial)
        return NesRefusal(refusal.message, code, serial=serial, assigned_to=owner)
    return NesRefusal(OTHER_USER_MESSAGE, code, serial=serial, assigned_to=owner)


def decide(*, account: str, serial: str, band_holding: Holding | None,
           user_active: Holding | None, band_seos: bool, policy: PolicySettings,
           config: NesConfig) -> Decision:
    """Decide whether ``account`` may enroll (or register) band ``serial``.

    :param band_holding: the band's present association, if any.
    :param user_active: the user's active association, if any.
    :param policy: the user's effective policy.
    """
    policy = policy.normalized()
    own_ok = policy.self_reenroll_own
    any_ok = policy.self_reenroll_any
    same = account.casefold()

    def band_check() -> NesRefusal | None:
        if band_holding is None:
            return None
        if band_holding.account.casefold() == same:
            if not own_ok:
                return _not_found(config, band_holding.account, account, serial)
            if not band_holding.is_active:
                return NesRefusal(NOT_ACTIVE_MESSAGE.format(serial=serial, user=account),
                                  RefusalCode.NOT_ACTIVE, serial=serial)
            return None
        if not any_ok or band_seos:
            return _other_owner(config, band_holding.account, account, serial, band_seos)
        return None

    def user_check() -> NesRefusal | None:
        if user_active is None or user_active.serial == serial or own_ok:
            return None
        return _not_found(config, user_active.account, account, user_active.serial)

    checks = ((band_check, user_check) if config.lookup_order is LookupOrder.BAND_FIRST
              else (user_check, band_check))
    for check in checks:
        refusal = check()
        if refusal is not None:
            return Decision(None, refusal)

    displaced = (user_active.serial
                 if user_active is not None and user_active.serial != serial else None)
    if band_holding is not None and band_holding.account.casefold() == same:
        return Decision(Action.REENROLL_OWN, None)
    if band_holding is not None:
        return Decision(Action.TAKE_OVER, None, previous_owner=band_holding.account,
                        displaced_serial=displaced)
    if displaced is not None:
        return Decision(Action.SELF_SERVICE_FREE, None, displaced_serial=displaced)
    return Decision(Action.FIRST, None)
