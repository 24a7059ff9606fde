"""Delete User Data (Band 3.0) and the Band 2.0 security wipe, as support staff run them.

The band must be off the wrist and on its charger; the person holds the bottom button about
10 s. A Band 3.0 is held until it vibrates twice and shows "USER DATA DELETED"; a Band 2.0 is
released when "SECURITY WIPE" appears and wipes for about 20 s. The enterprise server is not
changed: it still links the band to its user until an administrator disconnects it.

The wipe counts only once the band's own log shows it done (or, on a band that carries no event
log, once the person has typed the screen the wipe leaves).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hosttools.flows.bands import FlowBand, PreconditionError, Report, haptics
from nymi_device.backend import Feature
from nymi_device.protocol.model import BandStatus
from nymi_device.protocol.operator import Confirmation, PhysicalStep

__all__ = ["PreconditionError", "WipeResult", "check_wipe_preconditions", "delete_user_data"]


@dataclass
class WipeResult:
    serial: str
    gesture: str
    screens: list[str] = field(default_factory=list)
    haptics: list[str] = field(default_factory=list)
    confirmed: bool = False
    confirmed_by: str = Confirmation.BAND.value
    repaired: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_wipe_preconditions(status: BandStatus) -> None:
    where = ("it is on a wrist" if status.on_wrist
             else "it is not on its charger" if not status.on_charger else None)
    if where:
        raise PreconditionError(
            f"Delete User Data needs band {status.serial} taken off the wrist and attached to "
            f"a charger: {where}")


def delete_user_data(band: FlowBand, report: Report, *, prepare: bool = False) -> WipeResult:
    """Wipe the wearer's data from a band (template, label, credentials, policy, lockout).

    :param prepare: have the operator take the band off the wrist and put it on its charger
        first; without it a band that is not ready is refused (nothing is changed).
    """
    gesture = str(band.info.capabilities.get("wipe_gesture", "delete-user-data"))
    if band.has(Feature.STATUS) and not prepare:
        status = band.status()
        check_wipe_preconditions(status)
        report("Band off the wrist and on its charger", {"screen": status.screen})
    else:
        band.do(PhysicalStep.TAKE_OFF, report)
        band.do(PhysicalStep.CHARGE, report)
    title = "Delete User Data" if gesture == "delete-user-data" else "Security wipe"
    outcome = band.do(PhysicalStep.DELETE_USER_DATA, report, title)
    if outcome is None:  # the band holds no user data: nothing to delete
        return WipeResult(band.serial, gesture, confirmed=True,
                          repaired=[f"band {band.serial} held no user data"])
    return WipeResult(band.serial, gesture, list(outcome.screens), haptics(outcome),
                      confirmed=True, confirmed_by=outcome.confirmed_by.value)
