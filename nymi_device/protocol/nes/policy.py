"""Group and individual policies (DOMAIN.md 3.2, 8.3 and 10.4).

A :class:`PolicySettings` is a complete set of values (what a group policy holds, and what the
effective policy of a user is); a :class:`PolicyOverrides` is a partial one (what an individual
policy holds: ``None`` leaves the setting to the active group policy). The effective policy of a
user is the active group policy with the user's individual policy laid over it.

The self-service options nest as they do on the Policies page: "Allow a user to re-enroll any
active Nymi Band" sits under "Allow a user to re-enroll / re-register their Nymi Band". Turning
the second on turns the first on; clearing the first clears the second (KB 30071041708948:
"revert" means clearing the first option).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from nymi_device.protocol.nes.enums import EnrollmentDestination
from nymi_device.protocol.nes.errors import NesInvalidInput

DEFAULT_GROUP_POLICY = "Default Settings Set"
"""The group policy present after installation, active by default (DOMAIN 8.3)."""

NO_INDIVIDUAL_POLICY = "none[group policy applied]"
"""What the "Individual User Policy" column shows for a user without one (DOMAIN 8.2)."""

OPTION_LABELS: dict[str, str] = {
    "liveness_detection": "Liveness Detection",
    "haptic_feedback": "Haptic Feedback on Nymi Bands",
    "corporate_credentials": "Corporate Credentials Authentication",
    "band_label": "Band Label",
    "band_label_customize": "Customize Band Label",
    "self_reenroll_own": "Allow a user to re-enroll / re-register their Nymi Band",
    "self_reenroll_any": "Allow a user to re-enroll any active Nymi Band",
    "lock_control": "Enable Nymi Lock Control",
    "lock_when_away": "Lock When Away",
    "unlock_when_present": "Unlock When Present",
    "enrollment_destination": "Enrollment destination",
    "nba_idle_logout_min": "Nymi Band Application logout after inactivity (minutes)",
}
"""Each setting and the option name printed on the Policies page. The labels of Band Label
customisation, enrollment destination and the logout delay are not documented ([?] DOMAIN 8.3)."""

OPTION_ALIASES: dict[str, str] = {
    "Allow a user to re-enroll / re-register to any active Nymi Band": "self_reenroll_any",
    "Allow a user to re-enrol to any active Nymi Band": "self_reenroll_any",
    "Allow a user to re-enroll their Nymi Band": "self_reenroll_own",
}
"""Other spellings of the self-service options seen in the vendor's articles (DOMAIN 3.2 [C])."""

DESTINATION_LABELS = {
    EnrollmentDestination.NES: "NES",
    EnrollmentDestination.NES_AND_EVIDIAN: "NES and Evidian",
}


@dataclass(frozen=True)
class PolicySettings:
    """A complete set of policy values: a group policy, or a user's effective policy."""

    liveness_detection: bool
    haptic_feedback: bool
    corporate_credentials: bool
    band_label: bool
    band_label_customize: bool
    self_reenroll_own: bool
    self_reenroll_any: bool
    lock_control: bool
    lock_when_away: bool
    unlock_when_present: bool
    enrollment_destination: EnrollmentDestination
    nba_idle_logout_min: int

    def normalized(self) -> PolicySettings:
        """The settings with the self-service options nested (see the module docstring)."""
        own = self.self_reenroll_own or self.self_reenroll_any
        return replace(self, self_reenroll_own=own,
                       self_reenroll_any=own and self.self_reenroll_any)

    def digest(self) -> str:
        """A stable digest of the values; a change of it is a policy change for the band."""
        blob = json.dumps(self.to_json(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["enrollment_destination"] = self.enrollment_destination.value
        return out

    def labelled(self) -> list[tuple[str, str]]:
        """``(option name, value)`` rows as the Policies page would list them."""
        return [(OPTION_LABELS[k], _show(v)) for k, v in asdict(self).items()]


@dataclass(frozen=True)
class PolicyOverrides:
    """A partial set of values: an individual policy. ``None`` = use the group policy's value."""

    liveness_detection: bool | None = None
    haptic_feedback: bool | None = None
    corporate_credentials: bool | None = None
    band_label: bool | None = None
    band_label_customize: bool | None = None
    self_reenroll_own: bool | None = None
    self_reenroll_any: bool | None = None
    lock_control: bool | None = None
    lock_when_away: bool | None = None
    unlock_when_present: bool | None = None
    enrollment_destination: EnrollmentDestination | None = None
    nba_idle_logout_min: int | None = None

    def normalized(self) -> PolicyOverrides:
        """Nest the self-service options the way :meth:`PolicySettings.normalized` does."""
        own, any_ = self.self_reenroll_own, self.self_reenroll_any
        if any_ is True:
            own = True
        if own is False:
            any_ = False
        return replace(self, self_reenroll_own=own, self_reenroll_any=any_)

    def is_complete(self) -> bool:
        return all(getattr(self, f.name) is not None for f in fields(self))

    def complete(self) -> PolicySettings:
        if not self.is_complete():
            missing = [f.name for f in fields(self) if getattr(self, f.name) is None]
            raise NesInvalidInput(f"a group policy needs every setting; missing: {missing}")
        return PolicySettings(**{f.name: getattr(self, f.name) for f in fields(self)})

    def set_values(self) -> dict[str, Any]:
        """Only the settings this policy sets."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        if self.enrollment_destination is not None:
            out["enrollment_destination"] = self.enrollment_destination.value
        return out

    def updated(self, changes: dict[str, Any]) -> PolicyOverrides:
        """These overrides with ``changes`` (setting name or option label -> value) applied;
        a value of ``None`` clears the override. Clearing "Allow a user to re-enroll /
        re-register their Nymi Band" clears the option nested under it."""
        values = asdict(self)
        changed: dict[str, Any] = {}
        for name, value in changes.items():
            key = option_field(name)
            changed[key] = None if value is None else parse_value(key, value)
        values.update(changed)
        if changed.get("self_reenroll_own") is False:
            if changed.get("self_reenroll_any") is True:
                raise NesInvalidInput(
                    f"{OPTION_LABELS['self_reenroll_any']!r} needs "
                    f"{OPTION_LABELS['self_reenroll_own']!r}: turn both on, or the second off")
            values["self_reenroll_any"] = False
        return PolicyOverrides(**values).normalized()

    @staticmethod
    def of(settings: PolicySettings) -> PolicyOverrides:
        return PolicyOverrides(**asdict(settings))


SETTING_NAMES: tuple[str, ...] = tuple(f.name for f in fields(PolicySettings))


def default_settings(*, liveness: bool = True) -> PolicySettings:
    """The values of "Default Settings Set" (DOMAIN 8.3, KB 30071020046228).

    Documented: enrollment data to the NES database only, NBA logout after 5 minutes, liveness
    checked (configurable, DOMAIN 1.9 [C]), no self-service re-enrollment, no Lock Control.
    Assumed [I]: haptics on, corporate credentials off (KB 30071071226132), Band Label off.
    """
    return PolicySettings(
        liveness_detection=liveness,
        haptic_feedback=True,
        corporate_credentials=False,
        band_label=False,
        band_label_customize=False,
        self_reenroll_own=False,
        self_reenroll_any=False,
        lock_control=False,
        lock_when_away=False,
        unlock_when_present=False,
        enrollment_destination=EnrollmentDestination.NES,
        nba_idle_logout_min=5,
    )


READY_MADE_INDIVIDUAL_POLICIES: dict[str, PolicyOverrides] = {
    "Liveness Detection Disabled": PolicyOverrides(liveness_detection=False),
    "Corporate Credentials Authentication": PolicyOverrides(corporate_credentials=True),
}
"""The two individual policies present after installation (DOMAIN 8.3, KB 15482761213844)."""


def effective(group: PolicySettings, individual: PolicyOverrides | None) -> PolicySettings:
    """The user's effective policy: individual values over the active group policy's."""
    if individual is None:
        return group.normalized()
    return replace(group, **individual.set_values()).normalized()


def option_field(name: str) -> str:
    """The setting name for a setting name, an option label or a documented alias."""
    if name in OPTION_LABELS:
        return name
    for key, label in OPTION_LABELS.items():
        if label.casefold() == name.casefold():
            return key
    for alias, key in OPTION_ALIASES.items():
        if alias.casefold() == name.casefold():
            return key
    normal = name.strip().lower().replace("-", "_").replace(" ", "_")
    if normal in OPTION_LABELS:
        return normal
    raise NesInvalidInput(f"unknown policy option {name!r}; known: {', '.join(OPTION_LABELS)}")


_TRUE = {"true", "on", "yes", "1", "enabled", "enable"}
_FALSE = {"false", "off", "no", "0", "disabled", "disable"}


def parse_value(key: str, value: object) -> Any:
    """Check (and, from text, convert) a value for setting ``key``."""
    if key == "enrollment_destination":
        if isinstance(value, EnrollmentDestination):
            return value
        text = str(value).strip()
        for dest, label in DESTINATION_LABELS.items():
            if text.casefold() in (dest.value, label.casefold()):
                return dest
        raise NesInvalidInput(f"enrollment destination must be 'nes' or 'nes-and-evidian', "
                              f"not {value!r}")
    if key == "nba_idle_logout_min":
        if isinstance(value, bool):
            raise NesInvalidInput("the NBA logout delay is a number of minutes")
        try:
            minutes = int(str(value)) if not isinstance(value, int) else value
        except ValueError:
            raise NesInvalidInput(
                f"the NBA logout delay must be whole minutes, not {value!r}") from None
        if not 1 <= minutes <= 1440:
            raise NesInvalidInput("the NBA logout delay must be between 1 and 1440 minutes")
        return minutes
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in _TRUE:
        return True
    if text in _FALSE:
        return False
    raise NesInvalidInput(f"{OPTION_LABELS[key]!r} is on or off, not {value!r}")


def _show(value: object) -> str:
    if isinstance(value, bool):
        return "enabled" if value else "disabled"
    if isinstance(value, EnrollmentDestination):
        return DESTINATION_LABELS[value]
    return str(value)


SELF_SERVICE_MODES: dict[str, str] = {
    "off": "Off: an administrator changes a user's Nymi Band",
    "own": "Allow a user to re-enroll / re-register their Nymi Band",
    "any": "Allow a user to re-enroll any active Nymi Band",
}
"""The three positions of the self-service options, as one choice."""


def self_service_changes(mode: str) -> dict[str, bool]:
    """The two self-service settings for ``mode`` ("off", "own" or "any")."""
    if mode not in SELF_SERVICE_MODES:
        raise NesInvalidInput(f"self-service is one of {', '.join(SELF_SERVICE_MODES)}, "
                              f"not {mode!r}")
    return {"self_reenroll_own": mode != "off", "self_reenroll_any": mode == "any"}


def self_service_mode(values: PolicySettings | PolicyOverrides) -> str | None:
    """The self-service position of a policy (None: an individual policy that leaves it to
    the group policy)."""
    if values.self_reenroll_any:
        return "any"
    if values.self_reenroll_own:
        return "own"
    if values.self_reenroll_own is None and values.self_reenroll_any is None:
        return None
    return "off"
