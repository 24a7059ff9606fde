"""The contract every way of reaching a band implements, and how a target picks one.

A target is a moniker ``scheme:address`` — ``sim:AAAH-00125`` (a simulated band, in-process),
later ``ble:ADDRESS``, ``pcsc:READER``, ``udp:HOST:PORT``. Backends register under the
``nymi_device.backends`` entry-point group, so the device layer never imports the simulator;
a backend class can also be injected directly (``Band(backend=...)``).
"""

from __future__ import annotations

import abc
from collections.abc import AsyncIterator, Mapping
from importlib.metadata import entry_points
from typing import Any, ClassVar

from nymi_device.errors import InvalidTargetError
from nymi_device.protocol.model import BandEvent, BandInfo, BandStatus

ENTRY_POINT_GROUP = "nymi_device.backends"


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
