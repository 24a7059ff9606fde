"""Credentials this project publishes: the directory of the demonstration site.

Anyone who has read the demo knows them, so a site that still holds one must not be served as
if it were a real one: :func:`published_credentials_in_use` finds them, and
``nymi-sim nes serve`` refuses to start while any is in use unless it is told the site is a
demonstration (``--demo``).
"""

from __future__ import annotations

from nymi_device.protocol.nes.errors import NesConflict
from simulator.nes.directory import Directory

DEMO_PASSWORD = "demo-password"  # noqa: S105 - published on purpose; refused on a served site
DEMO_ADMIN = "CORP\\nes-admin"
DEMO_USERS = ("CORP\\tw-user2", "CORP\\tw-user1")
PUBLISHED_CREDENTIALS: tuple[tuple[str, str], ...] = tuple(
    (account, DEMO_PASSWORD) for account in (DEMO_ADMIN, *DEMO_USERS))
"""Every account and password the demonstration publishes."""


def published_credentials_in_use(directory: Directory) -> list[str]:
    """The accounts that still accept a published password: the published accounts, and every
    administrator (an administrator given the demo's password is as exposed)."""
    passwords = sorted({password for _, password in PUBLISHED_CREDENTIALS})
    candidates = {account.casefold(): account for account, _ in PUBLISHED_CREDENTIALS}
    candidates.update({u.account.casefold(): u.account for u in directory.users() if u.is_admin})
    exposed = []
    for account in sorted(candidates.values(), key=str.casefold):
        if any(directory.authenticate(account, password) is not None for password in passwords):
            exposed.append(account)
    return exposed


def refuse_published_credentials(directory: Directory) -> None:
    """Raise :class:`NesConflict` (one line) if the directory accepts a published credential."""
    exposed = published_credentials_in_use(directory)
    if exposed:
        raise NesConflict(
            f"the site's directory accepts the published demo password for {', '.join(exposed)}; "
            "give them other passwords (nymi-sim nes set-password ACCOUNT), or serve it with "
            "--demo if it is a demonstration", accounts=exposed)
