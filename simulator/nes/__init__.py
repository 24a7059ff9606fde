"""The Nymi Enterprise Server model (DOMAIN.md 2, 3, 5, 8, 10.4).

Users, bands and their associations, group and individual policies, the Evidian-style EAM
registry, FIDO2 security keys and the audit trail, in SQLAlchemy over SQLite (a file by default)
or PostgreSQL (by URL), with Alembic migrations applied on open; the rules of DOMAIN 10.4
enforced inside each operation's transaction; one server or the IT/OT pair; and an HTTP API
(:func:`create_app`). See ``docs/nes.md``.

Typical use::

    from simulator.nes import BandFacts, Directory, Nes

    directory = Directory()
    directory.add_user("CORP\\\\tw-user2", "secret")
    with Nes.open("sqlite:///nes.db", directory=directory) as nes:
        nes.enroll("CORP\\\\tw-user2", BandFacts("AAAH-00125", device_id="d1"))
        print(nes.user("tw-user2").bands)
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from nymi_device.protocol.nes import BandFacts
from nymi_device.protocol.nes.enums import PolicyStatus
from nymi_device.protocol.nes.errors import (
    NesConflict,
    NesError,
    NesInvalidInput,
    NesRefusal,
    NesStorageError,
    NotFound,
    RefusalCode,
)
from nymi_device.protocol.nes.views import (
    AssignmentView,
    AuditEventView,
    BandView,
    EamEntryView,
    EnrollmentCheck,
    EnrollmentResult,
    Fido2KeyView,
    PolicyView,
    UserView,
)
from simulator.nes.config import LookupOrder, NesConfig, NotFoundName, OtherOwnerRefusal
from simulator.nes.directory import ADMIN_GROUP, Directory, DirectoryUser
from simulator.nes.models import EamKind, EamState, EnrollmentDestination, PolicyKind
from simulator.nes.policy import (
    DEFAULT_GROUP_POLICY,
    NO_INDIVIDUAL_POLICY,
    OPTION_LABELS,
    READY_MADE_INDIVIDUAL_POLICIES,
    PolicyOverrides,
    PolicySettings,
    default_settings,
)
from simulator.nes.rules import NOT_FOUND_MESSAGE, OTHER_USER_MESSAGE, Action
from simulator.nes.servers import Layout, Site, memory_site, open_site
from simulator.nes.service import Nes

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

    from simulator.nes.api_guard import ApiLimits


def create_app(nes: Nes, *, token_idle_seconds: float = 300.0, limits: ApiLimits | None = None,
               clock: Callable[[], float] | None = None) -> FastAPI:
    """The HTTP API of one NES (imported lazily: FastAPI is not needed for in-process use)."""
    from simulator.nes.api import create_app as _create_app

    return _create_app(nes, token_idle_seconds=token_idle_seconds, limits=limits, clock=clock)


__all__ = [
    "ADMIN_GROUP",
    "DEFAULT_GROUP_POLICY",
    "NOT_FOUND_MESSAGE",
    "NO_INDIVIDUAL_POLICY",
    "OPTION_LABELS",
    "OTHER_USER_MESSAGE",
    "READY_MADE_INDIVIDUAL_POLICIES",
    "Action",
    "AssignmentView",
    "AuditEventView",
    "BandFacts",
    "BandView",
    "Directory",
    "DirectoryUser",
    "EamEntryView",
    "EamKind",
    "EamState",
    "EnrollmentCheck",
    "EnrollmentDestination",
    "EnrollmentResult",
    "Fido2KeyView",
    "Layout",
    "LookupOrder",
    "Nes",
    "NesConfig",
    "NesConflict",
    "NesError",
    "NesInvalidInput",
    "NesRefusal",
    "NesStorageError",
    "NotFound",
    "NotFoundName",
    "OtherOwnerRefusal",
    "PolicyKind",
    "PolicyOverrides",
    "PolicySettings",
    "PolicyStatus",
    "PolicyView",
    "RefusalCode",
    "Site",
    "UserView",
    "create_app",
    "default_settings",
    "memory_site",
    "open_site",
]
