"""Group and individual policies in the database: rows to values and back.

The values themselves (settings, overrides, option names, the effective policy) are the shared
vocabulary of :mod:`nymi_device.protocol.nes.policy`, re-exported here.
"""

from __future__ import annotations

from nymi_device.protocol.nes.policy import *  # noqa: F403
from nymi_device.protocol.nes.policy import SETTING_NAMES, PolicyOverrides
from simulator.nes.models import Policy


def overrides_from_row(row: Policy) -> PolicyOverrides:
    return PolicyOverrides(**{name: getattr(row, name) for name in SETTING_NAMES})


def write_row(row: Policy, values: PolicyOverrides) -> None:
    for name in SETTING_NAMES:
        new = getattr(values, name)
        if getattr(row, name) != new:
            setattr(row, name, new)
