"""The band's screens and messages, reproduced exactly as the vendor documents them.

Screen names come from the Band 3.0 screen table (DOMAIN.md 1.1); upper-case messages from the
authentication-failure, Delete User Data, security-wipe and restart articles (DOMAIN.md 10.5).
Band Label rules follow DOMAIN.md 2.3.
"""

from __future__ import annotations

BLANK = "Blank Screen"
NO_USER = "No User"
SETUP_CODE = "Setup code"
ADD_USER = "Add User"
AUTH_REQUIRED = "Authentication Required"
AUTH_IN_PROGRESS = "Authentication In Progress"
SUCCESS = "Success"
AUTHENTICATED = "Authenticated"
#: Shown when an authenticated band leaves the wrist. The vendor shows a deauthentication
#: screen (with or without the Band Label) but does not name it; this is our name for it.
DEAUTHENTICATED = "Deauthenticated"
#: The vendor shows a critical-charge image and shuts down; this is our name for it.
CRITICAL_BATTERY = "Critical Battery"

DELETE_USER_DATA = "Delete User Data"
USER_DATA_DELETED = "USER DATA DELETED"
SECURITY_WIPE = "SECURITY WIPE"
RESTART = "RESTART"
LIFT_FINGER = "LIFT FINGER"
TOUCH_SENSOR = "TOUCH SENSOR"
NO_MATCH = "NO MATCH"
NO_ECG = "NO ECG"
CENTER_FINGER = "CENTER FINGER"
WASH_AND_DRY = "WASH & DRY HAND & WRIST"
CLEAN_BAND = "CLEAN BAND"
SIT_STILL = "SIT STILL"
DONT_MOVE = "DON'T MOVE"
RETRY = "Retry"

BAND_LABEL_MAX_LENGTH = 12
BAND_LABEL_ALPHABET = frozenset(
    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 " + "&!\"#$%'()*+,.-\\/:;<>=?@[]{}|^_`~"
)


def normalize_band_label(text: str, max_length: int = BAND_LABEL_MAX_LENGTH) -> str:
    """The label as the band shows it: upper case, no leading or trailing space, at most
    ``max_length`` characters, and ``?`` for every character outside the supported set."""
    shown = "".join(c if c in BAND_LABEL_ALPHABET else "?" for c in text.upper().strip())
    return shown[:max_length].rstrip()
