"""The enterprise server's vocabulary, shared by the server and its clients.

What a host flow says to a Nymi Enterprise Server and hears back, whether the server is embedded
in the process or reached over its HTTP API: the facts about a band an enrollment records
(:class:`BandFacts`), the errors a server raises (one root, :class:`NesError`, each mixing in the
builtin a caller would catch), and :class:`NesClient`, the calls a flow makes. The embedded
server (``simulator.nes.Nes``) and the HTTP client (``hosttools.remote_nes.RemoteNes``) both
implement :class:`NesClient`; mypy checks them against it.

Pure data and typing: no I/O.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from nymi_device.protocol.nes.directory import DirectoryUser
from nymi_device.protocol.nes.enums import PolicyStatus
from nymi_device.protocol.nes.policy import PolicySettings
from nymi_device.protocol.nes.views import (
    AssignmentView,
    AuditEventView,
    BandView,
    EamEntryView,
    EnrollmentResult,
    Fido2KeyView,
    PolicyView,
    UserView,
)

# -- what an enrollment records about the band -------------------------------------------------

@dataclass(frozen=True)
class BandFacts:
    """What the Nymi Band Application reads from the band it enrolls."""

    serial: str
    device_id: str
    seos_enabled: bool = False
    secure_nfc: bool = False
    nfc_id: str | None = None
    """The band's stable NFC identifier: what the EAM registry binds."""
    liveness_configurable: bool = True
    """False for firmware older than CWP 1.1."""


# -- the calls a flow makes -----------------------------------------------------------------------

class DirectoryAccount(Protocol):
    @property
    def account(self) -> str: ...


class NesDirectory(Protocol):
    def authenticate(self, account: str, password: str) -> DirectoryAccount | None: ...


class EnrollmentAnswer(Protocol):
    """May this user enroll this band? (given before anything is written)"""

    @property
    def allowed(self) -> bool: ...

    @property
    def action(self) -> enum.Enum | None:
        """What the enrollment would do (its value: ``enroll``, ``self-service-free-band``,
        ``re-enroll-own-band``, ``self-service-band-of-another-user``); ``None`` if refused."""
        ...

    @property
    def code(self) -> str | None: ...

    @property
    def message(self) -> str | None: ...

    @property
    def band_version(self) -> int: ...


class EffectivePolicy(Protocol):
    """The settings of the user's effective policy an enrollment writes to the band."""

    @property
    def band_label(self) -> bool: ...

    @property
    def corporate_credentials(self) -> bool: ...

    @property
    def liveness_detection(self) -> bool: ...

    @property
    def haptic_feedback(self) -> bool: ...


class BandRecord(Protocol):
    @property
    def serial(self) -> str: ...

    @property
    def owner(self) -> str | None: ...


class UserRecord(Protocol):
    @property
    def account(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


class EnrollmentOutcome(Protocol):
    @property
    def action(self) -> enum.Enum: ...

    @property
    def user(self) -> UserRecord: ...


class Fido2KeyRecord(Protocol):
    @property
    def rp_id(self) -> str: ...

    @property
    def credential_id(self) -> bytes: ...

    @property
    def public_key_cose(self) -> bytes: ...


class NesClient(Protocol):
    """The calls the host flows make to an enterprise server."""

    @property
    def name(self) -> str: ...

    @property
    def directory(self) -> NesDirectory: ...

    def ensure_user(self, account: str, *, actor: str = "system") -> UserRecord: ...

    def user(self, account: str) -> UserRecord: ...

    def resolve_account(self, name: str) -> str: ...

    def effective_policy(self, account: str) -> EffectivePolicy: ...

    def band(self, serial: str) -> BandRecord: ...

    def bands(self, serial_query: str = "", *, limit: int = 100) -> Sequence[BandRecord]: ...

    def check_enrollment(self, account: str, serial: str) -> EnrollmentAnswer: ...

    def enroll(self, account: str, band: BandFacts, *, nba_version: str | None = None,
               label: str | None = None, expected_band_version: int | None = None,
               actor: str | None = None) -> EnrollmentOutcome: ...

    def register(self, account: str, band: BandFacts, *, enrolled_at_nes: str | None = None,
                 nba_version: str | None = None, label: str | None = None,
                 expected_band_version: int | None = None,
                 actor: str | None = None) -> EnrollmentOutcome: ...

    def check_tap(self, serial: str, *, account: str | None = None,
                  task: str = "tap task") -> Any:
        """Refuse (:class:`NesRefusal`) a tap task on a band that is not ``account``'s active
        band: suspended, replaced, set aside for a temporary band, or left after self-service."""
        ...

    def nba_sign_in(self, account: str, serial: str, *, nba_version: str | None = None,
                    actor: str | None = None) -> enum.Enum:
        """The user signed in to the NBA wearing the authenticated band: the policy status."""
        ...

    def record_fido2_key(self, account: str, serial: str, rp_id: str, credential_id: bytes,
                         public_key_cose: bytes, *, actor: str | None = None) -> Any: ...

    def fido2_keys(self, account: str | None = None,
                   serial: str | None = None) -> Sequence[Fido2KeyRecord]: ...


class DirectoryService(Protocol):
    """The directory behind an enterprise server, as its administrators reach it."""

    def authenticate(self, account: str, password: str) -> DirectoryUser | None: ...

    def add_user(self, account: str, password: str, *, first_name: str = "",
                 last_name: str = "", groups: Iterable[str] = (),
                 replace_existing: bool = False) -> DirectoryUser: ...


class NesService(NesClient, Protocol):
    """Everything the host tools ask of an enterprise server: the flows' calls and the NES
    Administrator Console's. The embedded server and the HTTP client both implement it."""

    @property
    def directory(self) -> DirectoryService: ...

    def user(self, account: str) -> UserView: ...

    def users(self, query: str = "", *, limit: int = 100, offset: int = 0) -> list[UserView]: ...

    def set_individual_policy(self, account: str, policy: str | None, *,
                              actor: str = "system") -> UserView: ...

    def effective_policy(self, account: str) -> PolicySettings: ...

    def policy_status(self, account: str) -> PolicyStatus: ...

    def band(self, serial: str) -> BandView: ...

    def bands(self, serial_query: str = "", *, limit: int = 100) -> list[BandView]: ...

    def update_band(self, serial: str, *, is_active: bool | None = None,
                    is_primary: bool | None = None, notes: str | None = None,
                    actor: str = "system") -> UserView: ...

    def suspend(self, serial: str, *, notes: str | None = None,
                actor: str = "system") -> UserView: ...

    def disconnect(self, serial: str, *, actor: str = "system") -> UserView: ...

    def replace_lost_band(self, serial: str, *, notes: str = "Lost Band",
                          actor: str = "system") -> UserView: ...

    def issue_temporary_band(self, serial: str, *, notes: str = "Temporary band issued",
                             actor: str = "system") -> UserView: ...

    def restore_original(self, serial: str, *, actor: str = "system") -> UserView: ...

    def reassign(self, serial: str, to_account: str, *, nba_version: str | None = None,
                 label: str | None = None, actor: str = "system") -> EnrollmentResult: ...

    def check_tap(self, serial: str, *, account: str | None = None,
                  task: str = "tap task") -> AssignmentView: ...

    def policies(self) -> list[PolicyView]: ...

    def policy(self, name: str) -> PolicyView: ...

    def update_policy(self, name: str, changes: Mapping[str, Any], *,
                      actor: str = "system") -> PolicyView: ...

    def fido2_keys(self, account: str | None = None,
                   serial: str | None = None) -> list[Fido2KeyView]: ...

    def eam_entries(self, account: str, *, include_deleted: bool = True
                    ) -> list[EamEntryView]: ...

    def eam_blacklist(self, entry_id: int, *, actor: str = "system") -> list[EamEntryView]: ...

    def eam_delete(self, entry_id: int, *, actor: str = "system") -> EamEntryView: ...

    def audit(self, *, table: str | None = None, account: str | None = None,
              key: str | None = None, limit: int = 1000) -> list[AuditEventView]: ...
