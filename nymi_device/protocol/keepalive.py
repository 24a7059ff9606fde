"""The keep-alive status a CTAP transport relays while a command runs, one definition for every
transport (CTAPHID_KEEPALIVE, CTAP 2.1 §11.2.9.1.7; the FIDO BLE KEEPALIVE frame, §11.4.4; the
NFC ``9100`` answer's data byte, §11.3.7), spelled as python-fido2 spells it."""

from __future__ import annotations

import enum


@enum.unique
class KeepaliveStatus(enum.IntEnum):
    PROCESSING = 1
    """The authenticator is still processing the request."""
    UPNEEDED = 2
    """The authenticator waits for user presence."""
