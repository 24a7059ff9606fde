"""``--json``: the diagnosis as one JSON document, versioned, with its JSON Schema.

The schema (:data:`SCHEMA`, printed by ``nymi-band diagnose --print-schema``) fixes the envelope:
findings, sections (source, duration, availability, data) and the timeline. A section's ``data``
is the collected evidence (an object, open to additions within a major version). A change that
removes or renames a field raises :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from typing import Any

from hosttools.diagnose.evidence import jsonable
from hosttools.diagnose.report import Diagnosis
from hosttools.diagnose.rules import RULES, Severity

SCHEMA_VERSION = 1
SCHEMA_ID = f"https://nymi-band-stack.invalid/schemas/diagnose-report-v{SCHEMA_VERSION}.json"

_SECTION = {
    "type": "object",
    "required": ["source", "duration_ms", "available", "unavailable", "data"],
    "additionalProperties": False,
    "properties": {
        "source": {"type": "string", "description": "Where the section came from."},
        "duration_ms": {"type": "number", "minimum": 0},
        "available": {"type": "boolean"},
        "unavailable": {"type": ["string", "null"],
                        "description": "Why the section could not be collected (null if it was)."},
        "data": {"type": ["object", "null"]},
    },
    "if": {"properties": {"available": {"const": True}}},
    "then": {"properties": {"data": {"type": "object"}, "unavailable": {"type": "null"}}},
    "else": {"properties": {"data": {"type": "null"}, "unavailable": {"type": "string"}}},
}

SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": SCHEMA_ID,
    "title": "nymi-band diagnose report",
    "type": "object",
    "required": ["schema_version", "target", "collected_utc", "duration_ms", "exit_code",
                 "findings", "sections", "timeline"],
    "additionalProperties": False,
    "properties": {
        "schema_version": {"const": SCHEMA_VERSION},
        "target": {"type": "string"},
        "collected_utc": {"type": "string", "format": "date-time"},
        "duration_ms": {"type": "number", "minimum": 0},
        "exit_code": {"type": "integer", "enum": [0, 1, 3]},
        "findings": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["rule", "severity", "title", "detail", "fix", "reference",
                             "evidence"],
                "additionalProperties": False,
                "properties": {
                    "rule": {"enum": [r.id for r in RULES]},
                    "severity": {"enum": [s.value for s in Severity]},
                    "title": {"type": "string"},
                    "detail": {"type": "string"},
                    "fix": {"type": "string"},
                    "reference": {"type": "string",
                                  "description": "The vendor support article of the fix."},
                    "evidence": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["section", "name", "value"],
                            "additionalProperties": False,
                            "properties": {
                                "section": {"enum": ["band", "events", "fido2", "nfc", "ble",
                                                     "server"]},
                                "name": {"type": "string"},
                                "value": {},
                            },
                        },
                    },
                },
            },
        },
        "sections": {
            "type": "object",
            "required": ["band", "events", "fido2", "nfc", "ble", "server"],
            "additionalProperties": False,
            "properties": {name: _SECTION for name in
                           ("band", "events", "fido2", "nfc", "ble", "server")},
        },
        "timeline": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["at_utc", "source", "kind", "text"],
                "additionalProperties": False,
                "properties": {
                    "at_utc": {"type": "string", "format": "date-time"},
                    "source": {"enum": ["band", "server"]},
                    "kind": {"type": "string"},
                    "text": {"type": "string"},
                },
            },
        },
    },
}


def document(diagnosis: Diagnosis) -> dict[str, Any]:
    """The report as plain JSON values (valid against :data:`SCHEMA`)."""
    evidence = diagnosis.evidence
    sections = {
        s.name: {"source": s.source, "duration_ms": s.duration_ms, "available": s.available,
                 "unavailable": s.unavailable, "data": jsonable(s.data)}
        for s in evidence.sections()
    }
    return {
        "schema_version": SCHEMA_VERSION,
        "target": evidence.target,
        "collected_utc": evidence.collected_utc.isoformat(),
        "duration_ms": evidence.duration_ms,
        "exit_code": int(diagnosis.exit_code),
        "findings": [jsonable(f) for f in diagnosis.findings],
        "sections": sections,
        "timeline": [jsonable(t) for t in diagnosis.timeline],
    }


def render_json(diagnosis: Diagnosis) -> str:
    return json.dumps(document(diagnosis), indent=2, sort_keys=True, default=str)
