"""Delete User Data (Band 3.0) and the Band 2.0 security wipe, as support staff run them.

DOMAIN.md 1.6 / 1.7: the band must be off the wrist and on its charger; the bottom button is held
about 10 s. Band 3.0 keeps it held until "USER DATA DELETED" and two quick vibrations; Band 2.0 is
released when "SECURITY WIPE" appears and wipes for about 20 s. The NES is not changed (1.6 step 5).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hosttools.flows.bands import FlowBand, Report
from nymi_device.errors import BandError
from nymi_device.protocol import screens


class PreconditionError(BandError, RuntimeError):
    """The band is not in the state the step needs; the message says what to do."""


@dataclass
class WipeResult:
    serial: str
    gesture: str
    screens: list[str] = field(default_factory=list)
    haptics: list[str] = field(default_factory=list)
    confirmed: bool = False
    repaired: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_wipe_preconditions(state: dict[str, Any]) -> None:
    band_state = state["state"]
    if band_state["on_wrist"]:
        raise PreconditionError(
            f"Delete User Data needs band {state['serial']} taken off the wrist and attached to "
            "a charger: it is on a wrist")
    if not band_state["on_charger"]:
        raise PreconditionError(
            f"Delete User Data needs band {state['serial']} taken off the wrist and attached to "
            "a charger: it is not on its charger")


def delete_user_data(band: FlowBand, report: Report) -> WipeResult:
    """Wipe the wearer's data from a band (template, label, credentials, policy, lockout)."""
    hold_s = float(band.fixture_value("timing", "wipe_hold_s"))
    if not band.simulated:
        band.physical("remove")
        band.physical("charge")
        band.physical("hold", button="bottom", seconds=hold_s)
        report("Confirm on the band", {"expect": screens.USER_DATA_DELETED})
        return WipeResult(band.serial, "prompted", confirmed=False)

    state = band.state()
    check_wipe_preconditions(state)
    gesture = str(band.fixture_value("capabilities", "wipe_gesture"))
    report("Band off the wrist and on its charger", {"screen": state["screen"]})
    after = band.physical("hold", button="bottom", seconds=hold_s)
    result = WipeResult(band.serial, gesture, list(after["screens"]), list(after["haptics"]))
    title = ("Held the bottom button: Delete User Data" if gesture == "delete-user-data"
             else "Held the bottom button until SECURITY WIPE, released: the wipe ran")
    report(title, {"screens": result.screens, "haptics": result.haptics})
    result.confirmed = after["state"]["enrollment"] == "unenrolled"
    if not result.confirmed:
        raise PreconditionError(f"band {band.serial} did not wipe: it shows '{after['screen']}'")
    return result
