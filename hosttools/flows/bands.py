"""How a flow reaches a band: physical steps and the Nymi Band Application's steps.

A flow never cares whether the band is simulated or real. It asks for a *physical* step (wear the
band, put it on the charger, hold a button, present a finger) and for an *application* step (the
steps the Nymi Band Application performs over the vendor's enrollment channel: setup code, capture,
label, policy). On a simulated band both are control-API actions (in-process, or sent to the
``nymi-sim serve`` daemon that holds the band). On a real band a physical step is prompted to the
person and then confirmed by watching what the band shows through standard surfaces; an
application step is refused with a message that says which tool can do it, because the vendor's
channel is not public.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from nymi_device.errors import BandError
from simulator.control import apply_action, daemon_port, send_action
from simulator.fleet import Fleet, default_sim_dir

Report = Callable[[str, dict[str, Any]], None]


class StepUnavailableError(BandError, NotImplementedError):
    """This step cannot be done on this band through this stack (and the message says why)."""


class FlowBand(Protocol):
    """The band as a flow sees it."""

    serial: str
    simulated: bool

    def state(self) -> dict[str, Any]:
        """The band's present report: screen, setup code, state (see ``simulator.fleet``)."""
        ...

    def physical(self, action: str, **params: Any) -> dict[str, Any]:
        """Perform (simulated) or prompt (real) a physical step; return the band's report."""
        ...

    def application(self, action: str, **params: Any) -> dict[str, Any]:
        """An enrollment-channel step the Nymi Band Application performs."""
        ...

    def fixture_value(self, section: str, name: str) -> Any:
        """A fixture value (simulated bands) or the documented default (real bands)."""
        ...


@dataclass
class SimulatedBand:
    """A band of a fleet directory; every step is a control-API action."""

    serial: str
    sim_dir: Path = field(default_factory=default_sim_dir)
    simulated: bool = True

    @property
    def fleet(self) -> Fleet:
        return Fleet(self.sim_dir)

    def _do(self, action: str, params: dict[str, Any]) -> dict[str, Any]:
        fleet = self.fleet
        port = daemon_port(fleet.band_dir(self.serial))
        if port is not None:
            return send_action(port, action, params)
        with fleet.open_band(self.serial) as band:
            return apply_action(band, action, params)

    def state(self) -> dict[str, Any]:
        return self._do("status", {})

    def physical(self, action: str, **params: Any) -> dict[str, Any]:
        return self._do(action, params)

    def application(self, action: str, **params: Any) -> dict[str, Any]:
        return self._do(action, params)

    def fixture_value(self, section: str, name: str) -> Any:
        fixture = self.fleet.fixture_of(self.serial)
        return getattr(getattr(fixture, section), name)

    @property
    def info(self) -> dict[str, Any]:
        info = self._do("info", {})["info"]
        assert isinstance(info, dict)
        return info


_PROMPTS = {
    "wear": "Put the band on your wrist.",
    "remove": "Take the band off your wrist.",
    "charge": "Put the band on its charger.",
    "uncharge": "Take the band off its charger.",
    "hold": "Hold the {button} button for about {seconds:g} s.",
    "finger": "Place your finger on the sensor and touch the bezel.",
}


@dataclass
class RealBand:
    """A physical band: physical steps are prompted; the vendor's channel is not ours."""

    serial: str
    prompt: Callable[[str], None]
    simulated: bool = False

    def state(self) -> dict[str, Any]:
        raise StepUnavailableError(
            f"the state of band {self.serial} (screen, enrollment) is read over the vendor's "
            "management channel, which is not public; look at the band's screen")

    def physical(self, action: str, **params: Any) -> dict[str, Any]:
        text = _PROMPTS.get(action)
        if text is None:
            raise StepUnavailableError(f"no physical step {action!r} on a real band")
        self.prompt(text.format(**params))
        return {"serial": self.serial, "prompted": text.format(**params)}

    def application(self, action: str, **params: Any) -> dict[str, Any]:
        raise StepUnavailableError(
            f"'{action}' on band {self.serial} goes over the vendor's enrollment channel, which "
            "is not public: do this step in the Nymi Band Application (or plug the vendor's SDK "
            "into nymi_device's management backend)")

    def fixture_value(self, section: str, name: str) -> Any:
        defaults = {("timing", "wipe_hold_s"): 10.0, ("limits", "enrollment_touches"): 8}
        return defaults[(section, name)]
