"""Errors of the enterprise server model.

The errors a client also sees are the shared vocabulary of :mod:`nymi_device.protocol.nes`, so the
server and its clients raise and catch the same classes. All derive from
:class:`nymi_device.errors.BandError` and mix in the builtin a caller would naturally catch. The
HTTP API maps them to status codes (``api_errors.py``): a refusal is 403, an unknown user / band /
policy is 404, a state conflict is 409, malformed input is 422.
"""

from __future__ import annotations

from nymi_device.protocol.nes import (
    NesConflict,
    NesError,
    NesInvalidInput,
    NesRefusal,
    NotFound,
    RefusalCode,
)

__all__ = ["NesConflict", "NesError", "NesInvalidInput", "NesRefusal", "NesStorageError",
           "NotFound", "RefusalCode"]


class NesStorageError(NesError, OSError):
    """A site's files are missing or damaged (``site.json``, a database it records)."""

    def __str__(self) -> str:
        return str(self.args[0])
