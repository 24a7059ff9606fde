"""A diagnosis: the evidence, its findings, one UTC timeline, and the exit code it implies."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime

from hosttools.diagnose.evidence import Evidence
from hosttools.diagnose.rules import Finding, evaluate


class ExitCode(enum.IntEnum):
    """``nymi-band diagnose`` exit codes (docs/diagnose.md)."""

    HEALTHY = 0
    """No finding (sections that could not be collected are listed in the report)."""
    FINDINGS = 1
    """At least one finding."""
    BAD_INPUT = 2
    """Bad arguments: nothing was collected."""
    BAND_UNREACHABLE = 3
    """The band itself could not be reached: the report shows what else was collected."""


@dataclass(frozen=True)
class TimelineEntry:
    at_utc: datetime
    source: str
    """``band`` (its event log) or ``server`` (the NES audit trail)."""
    kind: str
    text: str


@dataclass(frozen=True)
class Diagnosis:
    evidence: Evidence
    findings: tuple[Finding, ...]
    timeline: tuple[TimelineEntry, ...]

    @property
    def exit_code(self) -> ExitCode:
        if self.findings:
            return ExitCode.FINDINGS
        if not self.evidence.band.available:
            return ExitCode.BAND_UNREACHABLE
        return ExitCode.HEALTHY


def _event_text(data: dict[str, object]) -> str:
    return ", ".join(f"{k}={v}" for k, v in data.items())


def timeline(evidence: Evidence) -> tuple[TimelineEntry, ...]:
    """Band events and server audit events, oldest first, all in UTC."""
    entries: list[TimelineEntry] = []
    if evidence.events.data is not None:
        entries += [TimelineEntry(t.at_utc, "band", t.event.kind.value,
                                  _event_text(t.event.data))
                    for t in evidence.events.data.events]
    if evidence.server.data is not None:
        entries += [TimelineEntry(a.at_utc, "server", f"{a.table} {a.op}",
                                  f"{a.key}: {a.summary}" if a.summary else a.key)
                    for a in evidence.server.data.audit]
    return tuple(sorted(entries, key=lambda e: e.at_utc))


def diagnose(evidence: Evidence) -> Diagnosis:
    return Diagnosis(evidence, tuple(evaluate(evidence)), timeline(evidence))
