"""How a flow holds a band: the typed device contract, and an operator for the physical world.

A :class:`FlowBand` is one open band (a :class:`nymi_device.sync.SyncBand`, opened once for the
whole flow) and the :class:`~nymi_device.protocol.operator.Operator` who moves its physical
world. A flow cannot tell a simulated band from a real one: it asks for the contract's features
(:class:`nymi_device.backend.Feature`) it needs, and every physical step it asks for is
confirmed — by the band's own events, or by the person where the band offers none — before it
counts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

from nymi_device.backend import Feature
from nymi_device.errors import BandError, FeatureUnavailableError
from nymi_device.protocol.model import BandInfo, BandStatus, EventKind
from nymi_device.protocol.operator import (
    Confirmation,
    Operator,
    PhysicalStep,
    StepOutcome,
    already_done,
)
from nymi_device.sync import SyncBand

#: Called with each step's title and detail as the flow goes.
Report = Callable[[str, dict[str, Any]], None]


class PreconditionError(BandError, RuntimeError):
    """The band is not in the state the step needs; the message says what to do."""


def quiet(title: str, detail: dict[str, Any]) -> None:
    """A :data:`Report` that reports nothing."""


@dataclass
class FlowBand:
    """One band held open for a flow, with the operator of its physical world."""

    band: SyncBand
    operator: Operator
    info: BandInfo = field(init=False)
    #: Every physical step the flow had done, in order, as confirmed.
    outcomes: list[StepOutcome] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.info = self.band.info()

    @property
    def serial(self) -> str:
        return self.info.serial

    def has(self, feature: Feature) -> bool:
        return feature in self.band.features

    def require(self, *features: Feature, why: str) -> None:
        missing = [f.value for f in features if not self.has(f)]
        if missing:
            raise FeatureUnavailableError(
                f"{why} needs the band's {' and '.join(missing)}, which {self.band.backend_id} "
                "does not carry")

    def status(self) -> BandStatus:
        return self.band.status()

    def do(self, step: PhysicalStep, report: Report, title: str | None = None
           ) -> StepOutcome | None:
        """Have the operator do ``step`` unless the band already is in its end state; report
        it once confirmed. Returns the outcome (``None`` when nothing had to be done)."""
        if self.has(Feature.STATUS) and already_done(step, self.band.status()):
            return None
        outcome = self.operator.perform(step, self.band)
        self.outcomes.append(outcome)
        shown = [s for s in outcome.screens]
        text = title or step.value[0].upper() + step.value[1:]
        if outcome.confirmed_by is Confirmation.OPERATOR and step is not \
                PhysicalStep.READ_SETUP_CODE:
            text += " (confirmed by the operator, not by the band)"
        elif shown:
            text += f": {' -> '.join(shown)}"
        report(text, {"step": step.value, "confirmed_by": outcome.confirmed_by.value,
                      "screens": shown, "haptics": haptics(outcome)})
        return outcome

    def close(self) -> None:
        self.band.close()

    def __enter__(self) -> FlowBand:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def haptics(outcome: StepOutcome | None) -> list[str]:
    if outcome is None:
        return []
    return [str(e.data.get("pattern")) for e in outcome.events if e.kind == EventKind.HAPTIC]
