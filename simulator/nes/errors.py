"""Errors of the enterprise server model: the shared vocabulary of
:mod:`nymi_device.protocol.nes.errors`, so the server and its clients raise and catch the same
classes. The HTTP API maps them to status codes (``api_errors.py``): a refusal is 403, an unknown
user / band / policy is 404, a state conflict is 409, malformed input is 422.
"""

from __future__ import annotations

from nymi_device.protocol.nes.errors import (
    NesConflict,
    NesError,
    NesInvalidInput,
    NesRefusal,
    NesStorageError,
    NotFound,
    RefusalCode,
)

__all__ = ["NesConflict", "NesError", "NesInvalidInput", "NesRefusal", "NesStorageError",
           "NotFound", "RefusalCode"]
