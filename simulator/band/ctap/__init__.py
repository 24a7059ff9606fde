"""The band's CTAP 2.1 authenticator core: transport-free, bytes in and bytes out.

See :class:`Authenticator` for the entry points and :mod:`.wearer` for the seam to the band's
body (presence, verification, enrollment samples, Delete User Data).
"""

from __future__ import annotations

from .authenticator import Authenticator
from .errors import CtapError
from .wearer import (
    AutoWearer,
    CaptureOutcome,
    PresenceResult,
    SampleResult,
    SampleStatus,
    ScriptedWearer,
    UvResult,
    Wearer,
)

__all__ = [
    "Authenticator",
    "AutoWearer",
    "CaptureOutcome",
    "CtapError",
    "PresenceResult",
    "SampleResult",
    "SampleStatus",
    "ScriptedWearer",
    "UvResult",
    "Wearer",
]
