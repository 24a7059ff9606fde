"""Firmware fixtures: one declarative TOML file per band model x firmware version.

A fixture says what a band *is* (identity, capabilities, limits, timings, screens, radio and FIDO2
surface). The simulator builds a band from it; tests iterate over all of them. Every value that
DOMAIN.md marks as an inference ([I]) lives here, never as a constant in code.

A fixture is validated on load; a bad one is refused with a single line naming the file, the field
and what was expected (:class:`FixtureError`).
"""

from __future__ import annotations

import os
import tomllib
from functools import cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from nymi_device.errors import FixtureError
from simulator.fixtures_ctap import CtapSpec

FIXTURE_DIR = Path(__file__).resolve().parent.parent / "firmware_fixtures"


def fixture_dir() -> Path:
    """Where fixtures are read from: ``$NYMI_FIXTURE_DIR`` or the bundled ``firmware_fixtures``."""
    return Path(os.environ.get("NYMI_FIXTURE_DIR") or FIXTURE_DIR)
SERIAL_PATTERN = r"^[A-Z]{4}-[0-9]{5}$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Identity(_Strict):
    manufacturer: str
    model_name: str
    generation: Literal["2.0", "3.0", "reference"]
    firmware_version: str
    hardware_revision: str
    serial_pattern: str = SERIAL_PATTERN


class Capabilities(_Strict):
    #: "fingerprint" (Band 3.0: fingerprint identifies, ECG proves liveness), "ecg" (Band 2.0:
    #: the ECG is the biometric itself).
    biometric: Literal["fingerprint", "ecg"]
    liveness: bool
    fido2: bool
    seos: bool = False
    secure_nfc: bool = False
    haptics: bool = True
    band_label: bool = True
    corporate_credentials: bool = True
    #: "delete-user-data" (3.0: keep holding until USER DATA DELETED) or "security-wipe"
    #: (2.0: release when SECURITY WIPE appears, the wipe then runs in the background).
    wipe_gesture: Literal["delete-user-data", "security-wipe"]
    #: Restart by holding the top button on the charger (documented for Band 2.0 only).
    restart_gesture: bool = False
    #: "band-3.0": NO MATCH / NO ECG then advice; "retry": the older single "Retry" screen.
    failure_ui: Literal["band-3.0", "retry"] = "band-3.0"


class Limits(_Strict):
    enrollment_touches: int = Field(ge=1, le=32)
    #: Consecutive failures shown with the plain message before advice starts ([D]: 3).
    plain_failure_messages: int = Field(default=3, ge=0)
    #: Consecutive failures that lock the band out ([I], unknown on the real band).
    lockout_failures: int = Field(ge=1)
    #: Band seconds after which a lockout ends by itself; 0 = only Delete User Data ends it ([I]).
    lockout_timeout_s: float = Field(ge=0)
    #: Whether the liveness failure counter is separate from the mismatch counter ([I], DOMAIN 1.3).
    separate_liveness_counter: bool = True
    band_label_max_length: int = Field(default=12, ge=1)


class Timing(_Strict):
    """Physical durations, in band seconds."""

    fingerprint_match_s: float = Field(gt=0)
    #: A liveness failure ("NO ECG") is reported after this long ([D] about 13 s).
    liveness_check_s: float = Field(gt=0)
    #: A successful liveness check completes after this long ([I]).
    liveness_pass_s: float = Field(default=3.0, gt=0)
    capture_touch_s: float = Field(gt=0)
    wipe_hold_s: float = Field(gt=0)
    wipe_run_s: float = Field(ge=0)
    restart_hold_s: float = Field(gt=0)
    restart_run_s: float = Field(gt=0)
    sleep_after_s: float = Field(gt=0)
    result_screen_s: float = Field(gt=0)


class Battery(_Strict):
    capacity_hours: float = Field(gt=0)
    charge_hours: float = Field(gt=0)
    critical_pct: float = Field(ge=0, le=100)
    #: Minimum band seconds on the charger before a band that shut down will start again.
    critical_recharge_s: float = Field(ge=0)
    #: Charge level from which a band that shut down may start again.
    restart_pct: float = Field(ge=0, le=100)


class Screens(_Strict):
    no_match: str = "NO MATCH"
    no_ecg: str = "NO ECG"
    retry: str = "Retry"
    no_match_advice: list[str] = ["CENTER FINGER", "WASH & DRY HAND & WRIST", "CLEAN BAND"]
    no_ecg_advice: list[str] = ["SIT STILL", "WASH & DRY HAND & WRIST", "DON'T MOVE"]
    #: The lockout screen's text is not documented ([?]); configurable.
    locked_out: str = "LOCKED OUT"


class Policy(_Strict):
    """The policy a band applies before an NBA has written one ([C]: default liveness)."""

    liveness: bool = True
    haptics: bool = True


class Radio(_Strict):
    advertised_name_prefix: str = "Nymi"
    tx_power_dbm: int = Field(default=0, ge=-40, le=20)
    fido_ble: bool = False


class Fixture(_Strict):
    """One band model x firmware version."""

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9.\-]*$")
    description: str
    sources: list[str] = []
    identity: Identity
    capabilities: Capabilities
    limits: Limits
    timing: Timing
    battery: Battery
    screens: Screens = Screens()
    default_policy: Policy = Policy()
    radio: Radio = Radio()
    ctap: CtapSpec | None = None

    @property
    def generation(self) -> str:
        return self.identity.generation


def _describe(error: ValidationError, path: Path) -> str:
    first = error.errors()[0]
    where = ".".join(str(part) for part in first["loc"]) or "(top level)"
    kind = first["type"]
    if kind == "missing":
        what = "a value (the field is required)"
    elif kind == "extra_forbidden":
        what = "no such field (unknown name)"
    else:
        what = str(first["msg"])
        for prefix, replacement in (("Input should be ", ""),
                                    ("String should match", "a string matching"),
                                    ("Value error, ", "")):
            if what.startswith(prefix):
                what = replacement + what[len(prefix):]
        got = first.get("input")
        if not isinstance(got, dict | list):
            what += f", got {got!r}"
    return f"{path.name}: field {where}: expected {what}"


def load_fixture_file(path: Path) -> Fixture:
    """Parse and validate one fixture file; raise :class:`FixtureError` with one clear line."""
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise FixtureError(f"{path.name}: cannot read fixture: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise FixtureError(f"{path.name}: not valid TOML: {exc}") from None
    try:
        fixture = Fixture.model_validate(raw)
    except ValidationError as exc:
        raise FixtureError(_describe(exc, path)) from None
    if fixture.id != path.stem:
        raise FixtureError(f"{path.name}: field id: expected {path.stem!r}, got {fixture.id!r}")
    if fixture.capabilities.fido2 and fixture.ctap is None:
        raise FixtureError(f"{path.name}: field ctap: expected a [ctap] table (fido2 is true)")
    return fixture


def load_fixture(fixture_id: str, directory: Path | None = None) -> Fixture:
    """Load a fixture by id (the file name without ``.toml``)."""
    return _load_cached(fixture_id, directory or fixture_dir())


@cache
def _load_cached(fixture_id: str, directory: Path) -> Fixture:
    path = directory / f"{fixture_id}.toml"
    if not path.is_file():
        known = ", ".join(fixture_ids(directory)) or "none"
        raise FixtureError(f"unknown fixture {fixture_id!r} (known: {known})")
    return load_fixture_file(path)


def fixture_ids(directory: Path | None = None) -> list[str]:
    return sorted(p.stem for p in (directory or fixture_dir()).glob("*.toml"))


def all_fixtures(directory: Path | None = None) -> list[Fixture]:
    return [load_fixture(fid, directory) for fid in fixture_ids(directory)]
