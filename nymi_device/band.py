"""The ``Band`` facade: one object for one band, whatever reaches it.

``Band.open("sim:AAAH-00125")`` picks the backend by the target's scheme; ``Band(backend)``
takes an injected one. The API is asyncio-native; synchronous callers use
:class:`nymi_device.sync.SyncBand`. Every operation is the backend contract's
(:class:`~nymi_device.backend.BandBackend`); :meth:`Band.require` checks features up front.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from nymi_device.backend import BandBackend, Feature, backend_class, parse_target
from nymi_device.errors import FeatureUnavailableError
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.model import AuthState, BandEvent, BandInfo, BandStatus

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice


class Band:
    """A band reached through a :class:`~nymi_device.backend.BandBackend`."""

    def __init__(self, backend: BandBackend) -> None:
        self.backend = backend

    @classmethod
    def from_target(cls, target: str, **options: Any) -> Band:
        scheme, address = parse_target(target)
        return cls(backend_class(scheme).from_address(address, options))

    @classmethod
    async def open(cls, target: str, options: Mapping[str, Any] | None = None) -> Band:
        band = cls.from_target(target, **dict(options or {}))
        await band.backend.connect()
        return band

    @property
    def backend_id(self) -> str:
        return self.backend.backend_id

    @property
    def features(self) -> frozenset[Feature]:
        return self.backend.features

    def require(self, *features: Feature, why: str) -> None:
        """Raise :class:`FeatureUnavailableError` unless the backend carries ``features``."""
        missing = [f.value for f in features if f not in self.backend.features]
        if missing:
            raise FeatureUnavailableError(
                f"{why} needs the band's {', '.join(missing)}, which {self.backend_id} does not "
                "carry")

    async def info(self) -> BandInfo:
        return await self.backend.info()

    async def status(self) -> BandStatus:
        return await self.backend.status()

    async def recent_events(self, last: int = 20) -> list[BandEvent]:
        return await self.backend.recent_events(last)

    def events(self) -> AsyncIterator[BandEvent]:
        return self.backend.events()

    async def event_mark(self) -> int:
        return await self.backend.event_mark()

    async def events_since(self, mark: int) -> tuple[list[BandEvent], int]:
        return await self.backend.events_since(mark)

    async def enter_setup_code(self, code: str) -> None:
        await self.backend.enter_setup_code(code)

    async def start_capture(self) -> int:
        return await self.backend.start_capture()

    async def set_label(self, label: str | None) -> str | None:
        return await self.backend.set_label(label)

    async def add_corporate_authenticator(self) -> None:
        await self.backend.add_corporate_authenticator()

    async def apply_policy(self, policy: PolicySettings) -> None:
        await self.backend.apply_policy(policy)

    async def update_policy(self, policy: PolicySettings) -> None:
        await self.backend.update_policy(policy)

    async def corporate_login(self, accepted: bool = True) -> AuthState:
        return await self.backend.corporate_login(accepted)

    async def fido2_device(self) -> CtapDevice:
        return await self.backend.fido2_device()

    async def close(self) -> None:
        await self.backend.close()

    async def __aenter__(self) -> Band:
        await self.backend.connect()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
