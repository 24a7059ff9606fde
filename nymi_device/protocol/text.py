"""How bytes are written as text wherever a person or a JSON document sees them.

One encoding for identifiers everywhere: base64url without padding, as WebAuthn shows a
credential ID (and as the enterprise server's API carries one).
"""

from __future__ import annotations

import base64
import binascii

from nymi_device.errors import InvalidInputError

__all__ = ["b64url", "from_b64url"]


def b64url(data: bytes) -> str:
    """``data`` as base64url without padding."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    """The bytes of a base64url text (padding optional).

    :raises InvalidInputError: if ``text`` is not base64url.
    """
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        raise InvalidInputError(f"{text!r} is not base64url") from None
