"""The rules are pure functions of the evidence: built here from dataclasses, no band, no server.

Also: ``hosttools/diagnose`` reaches bands only through ``nymi_device`` (no ``simulator`` import).
"""

from __future__ import annotations

import ast
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

from hosttools.diagnose.evidence import (
    BandEvidence,
    Evidence,
    Fido2Credential,
    Fido2Evidence,
    NesAssignment,
    NesBand,
    NesFido2Key,
    NesUser,
    Section,
    ServerEvidence,
)
from hosttools.diagnose.report import ExitCode, diagnose
from hosttools.diagnose.rules import RULES, evaluate, firmware_version
from nymi_device.protocol.model import (
    AuthState,
    BandInfo,
    BandStatus,
    EnrollmentState,
    PowerState,
)

T = TypeVar("T")
PACKAGE = Path(__file__).resolve().parents[3] / "hosttools" / "diagnose"
NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
INFO = BandInfo("ACAK-00056", "Nymi Band 3.0", "nymi-band-3.0", "3.0", "Nymi Inc.",
                "CWP 1.16.0", "3.0", "d1", "04AA", "AA:BB:CC:DD:EE:FF",
                {"fido2": True, "secure_nfc": False})
STATUS = BandStatus("ACAK-00056", 100.0, PowerState.AWAKE, True, False, 80.0, "Authenticated",
                    EnrollmentState.ENROLLED, AuthState.AUTHENTICATED, None, False, True, True,
                    0, 0, False)
ROW = NesAssignment("ACAK-00056", True, False, "", NOW.isoformat(), None)
USER = NesUser("CORP\\tw-user2", "Active", None, (ROW,), True, True, True, {})
KEY = NesFido2Key("CORP\\tw-user2", "AAAH-00125", "portal.example.com", "aa" * 16,
                  NOW.isoformat())


def section(name: str, data: T) -> Section[T]:
    return Section(name, "test", 0.0, data=data)


def missing(name: str) -> Section[Any]:
    return Section(name, "test", 0.0, unavailable="not reached")


def evidence(*, status: BandStatus = STATUS, owner: NesUser | None = USER,
             keys: tuple[NesFido2Key, ...] = (), creds: tuple[Fido2Credential, ...] | None = (),
             server: bool = True, fido2: bool = True) -> Evidence:
    band = NesBand("ACAK-00056", "d1", False, False, "04AA",
                   None if owner is None else owner.account, ROW if owner else None, False)
    server_data = ServerEvidence("nes", band, owner, None, None, keys, (), ())
    fido2_data = Fido2Evidence("0acf3011-bc60-f375-fb53-6f05f43154e0", ("FIDO_2_0",), {}, (),
                               ("nfc",), creds, None if creds is None else len(creds), 99)
    return Evidence("sim:ACAK-00056", NOW, 1.0,
                    section("band", BandEvidence(INFO, status)), missing("events"),
                    section("fido2", fido2_data) if fido2 else missing("fido2"),
                    missing("nfc"), missing("ble"),
                    section("server", server_data) if server else missing("server"))


def test_healthy_evidence_has_no_finding() -> None:
    diagnosis = diagnose(evidence())
    assert diagnosis.findings == () and diagnosis.exit_code is ExitCode.HEALTHY


def test_the_key_rule_needs_the_credentials_it_compares() -> None:
    assert [f.rule for f in evaluate(evidence(keys=(KEY,)))] == ["fido2-key-missing"]
    assert evaluate(evidence(keys=(KEY,), creds=None)) == []  # band refused the listing
    assert evaluate(evidence(keys=(KEY,), fido2=False)) == []  # FIDO2 not reached
    on_band = (Fido2Credential("portal.example.com", "aa" * 16, "tw-user2"),)
    assert evaluate(evidence(keys=(KEY,), creds=on_band)) == []


def test_no_server_no_server_findings() -> None:
    wiped = replace(STATUS, enrollment=EnrollmentState.UNENROLLED)
    no_own = replace(USER, self_service_own=False, self_service_any=False)
    assert [f.rule for f in evaluate(evidence(status=wiped, owner=no_own))] == [
        "wiped-but-associated"]
    assert evaluate(evidence(status=wiped, owner=no_own, server=False)) == []


def test_an_unreachable_band_is_exit_3() -> None:
    e = replace(evidence(), band=missing("band"))
    assert diagnose(e).exit_code is ExitCode.BAND_UNREACHABLE


@pytest.mark.parametrize(("text", "version"), [
    ("CWP 1.16.0", (1, 16)), ("CWP 1.1", (1, 1)), ("CWP 1.0.3", (1, 0)),
    ("1.9.7", (0, 0)), ("unknown", None)])
def test_firmware_versions(text: str, version: tuple[int, int] | None) -> None:
    assert firmware_version(text) == version


def test_rule_ids_are_unique_and_each_has_a_summary() -> None:
    ids = [r.id for r in RULES]
    assert len(ids) == len(set(ids)) == 13
    assert all(r.summary for r in RULES)


def test_diagnose_reaches_bands_only_through_nymi_device() -> None:
    offenders = []
    for path in sorted(PACKAGE.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            offenders += [f"{path.name}: {n}" for n in names
                          if n == "simulator" or n.startswith("simulator.")]
    assert offenders == []
