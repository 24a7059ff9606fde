"""The console operator: a person does each physical step; the band's own events confirm it.

The person is told what to do on a text stream (stderr for ``nymi-band``, so the result on stdout
stays machine-readable). Then:

- on a band that carries its event log (a simulated band, or any band reached over the band
  management protocol), the operator waits for the event that proves the step
  (:func:`nymi_device.protocol.operator.confirms`) — the person presses nothing, the band
  answers, or the step fails when the timeout passes;
- on a band that carries no event log (a real band reached over standard surfaces), the person
  types what the band shows; the step counts only if that is what the step leaves on the band,
  and the outcome says it was confirmed by the operator, not by the band.

The setup code is always read off the band by the person: it never travels over a wire.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import TextIO

from nymi_device.errors import FeatureUnavailableError, StepNotConfirmedError
from nymi_device.protocol.model import BandEvent
from nymi_device.protocol.operator import (
    INSTRUCTIONS,
    SHOWN,
    Confirmation,
    ObservableBand,
    PhysicalStep,
    StepOutcome,
    confirms,
    shown_confirms,
)

DEFAULT_TIMEOUT = 120.0


class ConsoleOperator:
    """Prompts a person on ``out``, reads typed confirmations from ``inp``.

    :param timeout: how long (seconds) the band may take to confirm one step.
    :param poll: how often (seconds) the band's event log is read while waiting.
    """

    def __init__(self, out: TextIO | None = None, inp: TextIO | None = None, *,
                 timeout: float = DEFAULT_TIMEOUT, poll: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out if out is not None else sys.stderr
        self.inp = inp if inp is not None else sys.stdin
        self.timeout = timeout
        self.poll = poll
        self.clock = clock

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def _read(self, step: PhysicalStep) -> str:
        line = self.inp.readline()
        if not line:
            raise StepNotConfirmedError(step.value, f"the step '{step.value}' was not "
                                        "confirmed: no answer was typed (end of input)")
        return line.strip()

    def perform(self, step: PhysicalStep, band: ObservableBand) -> StepOutcome:
        if step is PhysicalStep.READ_SETUP_CODE:
            self._say(f"> {INSTRUCTIONS[step]}")
            return StepOutcome(step, Confirmation.OPERATOR, text=self._read(step).upper())
        try:
            mark = band.event_mark()
        except FeatureUnavailableError:
            return self._typed(step)
        self._say(f"> {INSTRUCTIONS[step]} (waiting for the band)")
        return self._wait(step, band, mark)

    def _wait(self, step: PhysicalStep, band: ObservableBand, mark: int) -> StepOutcome:
        deadline = self.clock() + self.timeout
        seen: list[BandEvent] = []
        while True:
            events, mark = band.events_since(mark)
            seen.extend(events)
            if any(confirms(step, e) for e in events):
                return StepOutcome.from_events(step, seen)
            if self.clock() >= deadline:
                raise StepNotConfirmedError(
                    step.value, f"the band did not confirm the step '{step.value}' within "
                    f"{self.timeout:g} s")
            time.sleep(self.poll)

    def _typed(self, step: PhysicalStep) -> StepOutcome:
        wanted = SHOWN.get(step)
        if wanted:
            self._say(f"> {INSTRUCTIONS[step]} Then type what the band shows "
                      f"({' or '.join(wanted)}):")
        else:
            self._say(f"> {INSTRUCTIONS[step]} Then type 'done':")
        typed = self._read(step)
        ok = shown_confirms(step, typed) if wanted else typed.lower() == "done"
        if not ok:
            raise StepNotConfirmedError(
                step.value, f"the step '{step.value}' was not confirmed: the band shows "
                f"{typed!r}" + (f", not {' or '.join(wanted)}" if wanted else ""))
        return StepOutcome(step, Confirmation.OPERATOR, text=typed)
