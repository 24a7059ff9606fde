"""The simulator's operator: performs a flow's physical steps through the control API.

Where a person would put the band on, hold a button or touch the sensor, :class:`SimOperator`
sends the matching control-API action (to the band held in this process, or to the daemon
serving it) — and then, like any operator, counts the step only when the band's own event log
shows it (:func:`nymi_device.protocol.operator.confirms`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from nymi_device.errors import StepNotConfirmedError
from nymi_device.protocol.operator import (
    ObservableBand,
    PhysicalStep,
    StepOutcome,
    already_done,
    confirms,
)
from simulator.fixtures import Fixture

#: Performs one control-API action and returns its report (:func:`simulator.fleet.describe`).
Control = Callable[[str, Mapping[str, Any]], dict[str, Any]]


class SimOperator:
    """Moves a simulated band's world for a flow.

    :param control: the control API of the band (``SimBackend.control``, or a daemon's).
    :param fixture: the band's fixture (how long its Delete User Data gesture is held).
    """

    def __init__(self, control: Control, fixture: Fixture) -> None:
        self._control = control
        self.fixture = fixture

    def _action(self, step: PhysicalStep) -> tuple[str, dict[str, Any]]:
        match step:
            case PhysicalStep.WEAR:
                return "wear", {}
            case PhysicalStep.TAKE_OFF:
                return "remove", {}
            case PhysicalStep.CHARGE:
                return "charge", {}
            case PhysicalStep.UNCHARGE:
                return "uncharge", {}
            case PhysicalStep.DELETE_USER_DATA:
                return "hold", {"button": "bottom",
                                "seconds": float(self.fixture.timing.wipe_hold_s)}
            case PhysicalStep.TOUCH_SENSOR | PhysicalStep.AUTHENTICATE:
                return "finger", {"match": True}
            case PhysicalStep.READ_SETUP_CODE:
                return "status", {}
        raise ValueError(step)  # pragma: no cover - every step is mapped above

    def perform(self, step: PhysicalStep, band: ObservableBand) -> StepOutcome:
        action, params = self._action(step)
        if step is PhysicalStep.READ_SETUP_CODE:
            code = self._control(action, params).get("setup_code")
            if not code:
                raise StepNotConfirmedError(step.value, f"cannot {step.value}: the band shows "
                                            f"'{band.status().screen}', not a setup code")
            return StepOutcome.from_events(step, [], text=str(code))
        mark = band.event_mark()
        self._control(action, params)
        events, _ = band.events_since(mark)
        if any(confirms(step, e) for e in events) or (
                step is not PhysicalStep.TOUCH_SENSOR and already_done(step, band.status())):
            return StepOutcome.from_events(step, events)
        raise StepNotConfirmedError(
            step.value, f"the band did not confirm the step '{step.value}': it shows "
            f"'{band.status().screen}'")
