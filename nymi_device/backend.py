"""The contract every way of reaching a band implements, and how a target picks one.

A target is a moniker ``scheme:address`` — ``sim:AAAH-00125`` (a simulated band, in-process or
held by a ``nymi-sim serve`` daemon), ``ble:ADDRESS`` (the band management protocol over BLE).
Backends register under the ``nymi_device.backends`` entry-point group, so the device layer never
imports the simulator; a backend class can also be injected directly (``Band(backend)``).

The contract is what a host flow needs of a band: identity, status, the event log, the Nymi Band
Application's enrollment channel (setup code, capture, label, corporate authenticator, policy)
and the band's FIDO2 authenticator. Every method is abstract: a backend is complete or absent.
A backend that cannot carry a part (a real band reached over standard BLE has no enrollment
channel of ours) says so in :attr:`BandBackend.features` and raises
:class:`~nymi_device.errors.FeatureUnavailableError` naming what is missing; a flow asks for the
features it needs before it touches the band.
"""

from __future__ import annotations

import abc
import enum
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import entry_points
from typing import TYPE_CHECKING, Any, ClassVar

from nymi_device.errors import InvalidTargetError
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.model import AuthState, BandEvent, BandInfo, BandStatus

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

ENTRY_POINT_GROUP = "nymi_device.backends"


class Feature(enum.StrEnum):
    """The parts of the contract a backend can carry for its band."""

    STATUS = "status"
    """:meth:`BandBackend.status`: screen, wrist, charger, enrollment, authentication."""
    EVENTS = "events"
    """The band's own event log (:meth:`BandBackend.events_since`): what confirms a step."""
    ENROLLMENT = "enrollment"
    """The Nymi Band Application's enrollment channel (setup code, capture, label, policy)."""
    FIDO2 = "fido2"
    """The band's FIDO2 authenticator (:meth:`BandBackend.fido2_device`)."""


class BandBackend(abc.ABC):
    """One connection to one band. Every method is abstract: a backend is complete or absent."""

    scheme: ClassVar[str]

    @classmethod
    @abc.abstractmethod
    def from_address(cls, address: str, options: Mapping[str, Any]) -> BandBackend:
        """Build the backend for the part of the moniker after ``scheme:``."""

    @property
    @abc.abstractmethod
    def backend_id(self) -> str:
        """Which backend and band this is, for logs and diagnostics."""

    @abc.abstractmethod
    async def connect(self) -> None: ...

    @abc.abstractmethod
    async def close(self) -> None: ...

    @abc.abstractmethod
    async def info(self) -> BandInfo: ...

    @abc.abstractmethod
    async def status(self) -> BandStatus: ...

    @abc.abstractmethod
    async def recent_events(self, last: int = 20) -> list[BandEvent]:
        """The band's most recent events, oldest first."""

    @abc.abstractmethod
    def events(self) -> AsyncIterator[BandEvent]:
        """Events as they happen, until the connection closes."""

    @property
    @abc.abstractmethod
    def features(self) -> frozenset[Feature]:
        """What this backend carries for its band (known once connected)."""

    @abc.abstractmethod
    async def event_mark(self) -> int:
        """Where the band's event log ends now: pass it to :meth:`events_since`."""

    @abc.abstractmethod
    async def events_since(self, mark: int) -> tuple[list[BandEvent], int]:
        """The band's events after ``mark`` (oldest first) and the new mark."""

    # -- the enrollment channel (the Nymi Band Application's steps) ---------------------------
    @abc.abstractmethod
    async def enter_setup_code(self, code: str) -> None:
        """Type the setup code the worn band shows; the band then shows "Add User"."""

    @abc.abstractmethod
    async def start_capture(self) -> int:
        """Start the fingerprint capture; returns how many touches the band wants."""

    @abc.abstractmethod
    async def set_label(self, label: str | None) -> str | None:
        """Stage the Band Label (``None``: no label); returns it as the band will show it."""

    @abc.abstractmethod
    async def add_corporate_authenticator(self) -> None:
        """Stage the corporate credential authenticator."""

    @abc.abstractmethod
    async def apply_policy(self, policy: PolicySettings) -> None:
        """Write the policy and finish the enrollment (the band authenticates its wearer)."""

    @abc.abstractmethod
    async def update_policy(self, policy: PolicySettings) -> None:
        """Apply a changed policy to the enrolled, authenticated band (the NBA sign-in)."""

    @abc.abstractmethod
    async def corporate_login(self, accepted: bool = True) -> AuthState:
        """The NBA's corporate-credential login while the band is worn."""

    # -- FIDO2 --------------------------------------------------------------------------------
    @abc.abstractmethod
    async def fido2_device(self) -> CtapDevice:
        """The band's FIDO2 authenticator as a python-fido2 ``CtapDevice`` (caller closes it)."""


def parse_target(target: str) -> tuple[str, str]:
    scheme, sep, address = target.partition(":")
    if not sep or not scheme or not address:
        raise InvalidTargetError(
            f"target {target!r} is not of the form SCHEME:ADDRESS (e.g. sim:AAAH-00125)"
        )
    return scheme.lower(), address


def backend_class(scheme: str) -> type[BandBackend]:
    found = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
    if scheme not in found:
        known = ", ".join(sorted(found)) or "none installed"
        raise InvalidTargetError(f"no backend for target scheme {scheme!r} (known: {known})")
    cls = found[scheme].load()
    if not (isinstance(cls, type) and issubclass(cls, BandBackend)):
        raise InvalidTargetError(f"backend {scheme!r} is not a BandBackend")
    return cls
