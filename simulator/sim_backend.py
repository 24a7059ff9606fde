"""The ``sim:SERIAL`` backend: a band of the fleet directory, behind the host contract.

Two ways to reach it, chosen when it connects:

- **in-process**: the band's flash is opened once, when the backend connects, and held until it
  closes — a whole flow runs on one open band. Every change is checkpointed (the band's world and
  its new events) as soon as it happens, so a flow killed half-way leaves exactly what the band
  had done; reading changes nothing.
- **through a daemon**: while ``nymi-sim serve`` holds the band, every call is a control-API
  request to that daemon, and FIDO2 goes through the front end it serves (NFC through pcscd, or
  CTAPHID over UDP).

Physical steps are not part of the contract: :meth:`SimBackend.control` is what the simulator's
operator (:mod:`simulator.operator`) uses to move the band's world.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nymi_device.backend import BandBackend, Feature
from nymi_device.errors import (
    BandUnreachableError,
    FeatureUnavailableError,
    InvalidInputError,
    UnknownBandError,
    UnreachableReason,
)
from nymi_device.protocol.management_bodies import PolicySettings
from nymi_device.protocol.model import AuthState, BandEvent, BandInfo, BandStatus
from nymi_device.protocol.screens import normalize_band_label
from simulator.band.band import EmulatedBand
from simulator.control import CONTROL_FILE, apply_action, daemon_port, send_action
from simulator.fixtures import Fixture
from simulator.fleet import Fleet, check_serial, default_sim_dir

if TYPE_CHECKING:
    from fido2.ctap import CtapDevice

    from simulator.band.ctap.authenticator import Authenticator

_ALL = frozenset(Feature)


class SimBackend(BandBackend):
    """A simulated band: in-process over its own flash, or through the daemon serving it."""

    scheme = "sim"

    def __init__(self, serial: str, sim_dir: Path) -> None:
        self.serial = check_serial(serial)
        self.fleet = Fleet(sim_dir)
        self._stack: contextlib.ExitStack | None = None
        self._band: EmulatedBand | None = None
        self._saved = 0  # how many of the held band's events are in events.jsonl
        self._dirty = False  # a checkpoint since the last durable save
        self._port: int | None = None
        self._authenticator: Authenticator | None = None
        #: How often this backend opened the band's flash (one per connection in-process).
        self.flash_opens = 0

    @classmethod
    def from_address(cls, address: str, options: Mapping[str, Any]) -> SimBackend:
        unknown = set(options) - {"sim_dir"}
        if unknown:
            raise InvalidInputError(f"unknown sim option(s): {', '.join(sorted(unknown))}")
        sim_dir = options.get("sim_dir")
        return cls(address, Path(sim_dir) if sim_dir else default_sim_dir())

    @property
    def backend_id(self) -> str:
        how = f"daemon on control port {self._port}" if self._port else "in-process"
        return f"sim:{self.serial} ({self.fleet.root}, {how})"

    @property
    def features(self) -> frozenset[Feature]:
        return _ALL

    @property
    def fixture(self) -> Fixture:
        if self._band is not None:
            return self._band.fixture
        return self.fleet.fixture_of(self.serial)

    # -- connection ------------------------------------------------------------------------------
    async def connect(self) -> None:
        if self._stack is not None or self._port is not None:
            return
        try:
            band_dir = self.fleet.band_dir(self.serial)
        except UnknownBandError as exc:
            raise BandUnreachableError(str(exc), UnreachableReason.NOT_FOUND) from None
        self._port = daemon_port(band_dir)
        if self._port is not None:
            return
        stack = contextlib.ExitStack()
        self._band = stack.enter_context(self.fleet.open_band(self.serial, save=False))
        self.flash_opens += 1
        self._stack = stack
        self._saved = 0

    async def close(self) -> None:
        if self._band is not None and (self._dirty or len(self._band.events) > self._saved):
            # What a FIDO2 request did to the band (a wink, a refusal); the world, durably.
            self._checkpoint(durable=True)
        stack, self._stack = self._stack, None
        self._band, self._authenticator, self._port = None, None, None
        if stack is not None:
            stack.close()

    def _held(self) -> EmulatedBand:
        if self._band is None:
            raise BandUnreachableError(f"sim:{self.serial}: not connected",
                                       UnreachableReason.TRANSPORT_FAILED)
        return self._band

    def _checkpoint(self, *, durable: bool = False) -> None:
        """Settle the held band and keep what it did: its world and its new events."""
        band = self._held()
        with band.lock:
            band.settle()
            self._saved = self.fleet.save_band(self.serial, band, self._saved,
                                               durable=durable and self.fleet.durable)
            self._dirty = not durable

    def control(self, action: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """One control-API action on the band (see :mod:`simulator.control`); its report."""
        if self._port is not None:
            return send_action(self._port, action, dict(params or {}))
        band = self._held()
        report = apply_action(band, action, dict(params or {}))
        if action not in ("info", "status", "events"):
            self._checkpoint()
        return report

    # -- identity, state, events -----------------------------------------------------------------
    async def info(self) -> BandInfo:
        if self._port is not None:
            return BandInfo.from_dict(self.control("info")["info"])
        return self._held().info()

    async def status(self) -> BandStatus:
        if self._port is not None:
            return BandStatus.from_dict(self.control("status")["state"])
        band = self._held()
        with band.lock:
            return band.status()

    async def recent_events(self, last: int = 20) -> list[BandEvent]:
        if self._band is not None:
            unsaved = self._band.events[self._saved:]
            return (self.fleet.event_log(self.serial) + unsaved)[-last:] if last > 0 else []
        if self._port is not None:
            events, _ = await self.events_since(0)
            return events[-last:] if last > 0 else []
        return self.fleet.event_log(self.serial, last)

    async def events(self) -> AsyncIterator[BandEvent]:
        """New events as they happen (polled), until the connection closes."""
        mark = await self.event_mark()
        while self._band is not None or self._port is not None:
            events, mark = await self.events_since(mark)
            for event in events:
                yield event
            await asyncio.sleep(0.05)

    async def event_mark(self) -> int:
        return (await self.events_since(1 << 62))[1]

    async def events_since(self, mark: int) -> tuple[list[BandEvent], int]:
        if self._port is not None:
            answer = self.control("events", {"since": mark})
            return [BandEvent.from_dict(e) for e in answer["events"]], int(answer["end"])
        band = self._held()
        with band.lock:
            end = len(band.events)
            return list(band.events[min(mark, end):]), end

    # -- the enrollment channel --------------------------------------------------------------
    def _step(self, action: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self.control(action, params or {})

    async def enter_setup_code(self, code: str) -> None:
        self._step("enter-setup-code", {"code": code})

    async def start_capture(self) -> int:
        self._step("start-capture")
        return int(self.fixture.limits.enrollment_touches)

    async def set_label(self, label: str | None) -> str | None:
        self._step("set-label", {"label": label})
        fixture = self.fixture
        if label is None or not fixture.capabilities.band_label:
            return None
        return normalize_band_label(label, fixture.limits.band_label_max_length)

    async def add_corporate_authenticator(self) -> None:
        self._step("add-corporate-authenticator")

    async def apply_policy(self, policy: PolicySettings) -> None:
        self._step("apply-policy", {"liveness": policy.liveness, "haptics": policy.haptics})

    async def update_policy(self, policy: PolicySettings) -> None:
        self._step("update-policy", {"liveness": policy.liveness, "haptics": policy.haptics})

    async def corporate_login(self, accepted: bool = True) -> AuthState:
        report = self._step("corporate-login", {"ok": accepted})
        return AuthState(report["state"]["auth"])

    # -- FIDO2 -----------------------------------------------------------------------------------
    async def fido2_device(self) -> CtapDevice:
        if self._port is not None:
            return await self._served_fido2_device()
        band = self._held()
        if band.fixture.ctap is None:
            raise FeatureUnavailableError(
                f"band {self.serial} ({band.fixture.id}) has no FIDO2 authenticator")
        from simulator.band.ctap.inprocess import InProcessCtapDevice

        if self._authenticator is None:
            self._authenticator = _wire_authenticator(band)
        return InProcessCtapDevice(self._authenticator)

    async def _served_fido2_device(self) -> CtapDevice:
        from nymi_device.fido import open_ctap_device

        meta = json.loads((self.fleet.band_dir(self.serial) / CONTROL_FILE).read_text())
        vpcd = meta.get("vpcd")
        if vpcd:
            # The real band's way: FIDO2 over NFC, the band on the reader, through pcscd.
            self.control("tap")
            return await asyncio.to_thread(open_ctap_device, f"pcsc:{vpcd['reader']}",
                                           timeout=10)
        udp = meta.get("ctaphid_udp")
        if udp:
            return await asyncio.to_thread(open_ctap_device, f"udp:127.0.0.1:{udp[0]}",
                                           local_port=udp[1] if udp[1] is not None else 0)
        raise FeatureUnavailableError(
            f"band {self.serial} is served without a FIDO2 front end (serve it with --vpcd or "
            "--ctaphid-udp)")


def _wire_authenticator(band: EmulatedBand) -> Authenticator:
    """The band's FIDO2 authenticator over its own flash, its wearer the band's body."""
    from simulator.band.ctap.authenticator import Authenticator
    from simulator.band.wearer_bridge import BandWearer

    wearer = BandWearer(band, auto_presence=False)
    return Authenticator(band.fixture, band.storage, wearer)  # it follows the band's hooks

