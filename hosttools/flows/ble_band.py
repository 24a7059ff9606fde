"""A simulated band reached over BLE: the application's steps over the band management protocol.

:class:`BleManagedBand` is a :class:`~hosttools.flows.bands.FlowBand` for a band on the air,
reached with bleak through a Bumble host (``tcp-client:127.0.0.1:PORT`` to ``nymi-sim serve
--ble PORT``, or an in-process transport): the Nymi Band Application's steps (setup code,
capture, label, corporate authenticator, policy) and the band's state travel over the band
management protocol (docs/protocol.md §8) in a secure session with the band; the physical world
(wear the band, the fingerprint touches, the charger, the buttons) is moved through the control
API of the daemon serving it. The flows of :mod:`hosttools.flows.enroll` run on it unchanged.

Two things the protocol does not carry, by design: the setup code never leaves the band (§8.4),
so :meth:`BleManagedBand.state` reads it off the band's screen through the control API, as the
person would; and Delete User Data needs the physical gesture, which is a physical step here too.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

from hosttools.flows.bands import StepUnavailableError
from nymi_device.errors import BandUnreachableError, InvalidInputError, UnreachableReason
from nymi_device.management_client import ManagementClient
from nymi_device.protocol import screens
from nymi_device.protocol.management_bodies import LoggedEvent, PolicySettings
from nymi_device.protocol.model import BandEvent, BandInfo, BandStatus, EventKind
from nymi_device.transport.ble import BleBandBackend
from nymi_device.transport.bumble_backend import HciSpec
from simulator.band.management_identity import simulation_root
from simulator.control import CONTROL_FILE, daemon_port, send_action
from simulator.fixtures import Fixture, load_fixture
from simulator.fleet import Fleet, default_sim_dir

__all__ = [
    "STEPS",
    "BleManagedBand",
    "Control",
    "ServedBle",
    "ble_target_options",
    "daemon_control",
    "served_over_ble",
    "step_report",
]

T = TypeVar("T")
#: Performs one control-API action on the band and returns its report (simulator.fleet.describe).
Control = Callable[[str, dict[str, Any]], dict[str, Any]]
_Step = Callable[[ManagementClient, dict[str, Any]], Awaitable[dict[str, Any]]]
#: GET_EVENT_LOG from here returns no events, only where the log ends (§8.6).
_PAST_THE_END = (1 << 64) - 1


# --- which simulated bands are on the air ------------------------------------------------------

@dataclass(frozen=True)
class ServedBle:
    """A band that a running ``nymi-sim serve --ble`` keeps on the air."""

    serial: str
    address: str
    moniker: str
    control_port: int


def served_over_ble(sim_dir: Path | None = None) -> list[ServedBle]:
    """The bands of the fleet directory that a running daemon serves over BLE."""
    fleet = Fleet(sim_dir or default_sim_dir())
    found: list[ServedBle] = []
    for serial in fleet.serials():
        band_dir = fleet.band_dir(serial)
        port = daemon_port(band_dir)
        if port is None:
            continue
        try:
            ble = json.loads((band_dir / CONTROL_FILE).read_text()).get("ble")
        except (OSError, ValueError):
            continue
        if isinstance(ble, dict) and {"address", "moniker"} <= set(ble):
            found.append(ServedBle(serial, str(ble["address"]).upper(), str(ble["moniker"]),
                                   port))
    return found


def _served(address: str, sim_dir: Path | None) -> ServedBle | None:
    wanted = address.upper()
    return next((s for s in served_over_ble(sim_dir) if s.address == wanted), None)


def ble_target_options(address: str, hci: str | None = None,
                       sim_dir: Path | None = None) -> dict[str, Any]:
    """``Band.from_target("ble:ADDRESS", **options)`` options for ``nymi-band``.

    A band that a daemon of the fleet directory serves is simulated: its identity is vouched
    for by the simulation authority, whose root is trusted for it alone, and its radio is the
    daemon's unless ``hci`` names another. Any other address gets only ``hci``.
    """
    served = _served(address, sim_dir)
    if served is None:
        return {"hci": hci} if hci else {}
    return {"hci": hci or served.moniker, "trusted_ca": simulation_root()}


def daemon_control(serial: str, sim_dir: Path | None = None) -> Control:
    """Physical steps for ``serial``, sent to the ``nymi-sim serve`` daemon holding it."""
    band_dir = Fleet(sim_dir or default_sim_dir()).band_dir(serial)

    def control(action: str, params: dict[str, Any]) -> dict[str, Any]:
        port = daemon_port(band_dir)
        if port is None:
            raise BandUnreachableError(
                f"band {serial} is not running: start 'nymi-sim serve --ble PORT --band "
                f"{serial}' (a band on the air needs a running band)",
                UnreachableReason.POWERED_OFF)
        return send_action(port, action, params)

    return control


# --- the application's steps over the protocol -------------------------------------------------

def _text(params: dict[str, Any], name: str) -> str:
    value = params.get(name)
    if not isinstance(value, str):
        raise InvalidInputError(f"{name} must be a string, got {value!r}")
    return value


def _policy(params: dict[str, Any]) -> PolicySettings:
    return PolicySettings(liveness=bool(params.get("liveness", True)),
                          haptics=bool(params.get("haptics", True)))


async def _enter_setup_code(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    await client.enter_setup_code(_text(params, "code"))
    return {}


async def _start_capture(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    return {"samples": await client.start_capture()}


async def _set_label(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    label = params.get("label")
    return {"label": await client.set_label(None if label is None else _text(params, "label"))}


async def _add_corporate(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    await client.add_corporate_authenticator()
    return {}


async def _apply_policy(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    """The last enrollment step: stage the policy, then finish (§8.4)."""
    await client.set_policy(_policy(params))
    await client.finish_enrollment()
    return {}


async def _update_policy(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    await client.update_policy(_policy(params))
    return {}


async def _corporate_login(client: ManagementClient, params: dict[str, Any]) -> dict[str, Any]:
    return {"auth": (await client.corporate_login(bool(params.get("ok", True)))).value}


#: The flows' application steps (the control API's names) and the protocol commands doing them.
STEPS: dict[str, _Step] = {
    "enter-setup-code": _enter_setup_code,        # ENROLL_SETUP_CODE
    "start-capture": _start_capture,              # ENROLL_START_CAPTURE
    "set-label": _set_label,                      # ENROLL_SET_LABEL
    "add-corporate-authenticator": _add_corporate,  # ENROLL_ADD_CORPORATE_AUTHENTICATOR
    "apply-policy": _apply_policy,                # ENROLL_SET_POLICY, ENROLL_FINISH
    "update-policy": _update_policy,              # UPDATE_POLICY
    "corporate-login": _corporate_login,          # CORPORATE_LOGIN
}


def step_report(status: BandStatus, events: list[BandEvent]) -> dict[str, Any]:
    """A step's report in the control API's shape (``simulator.fleet.describe``)."""
    return {
        "serial": status.serial,
        "screen": status.screen,
        "setup_code": None,  # never on the protocol (§8.4); see BleManagedBand.state
        "haptics": [e.data["pattern"] for e in events if e.kind == EventKind.HAPTIC],
        "screens": [e.data["screen"] for e in events if e.kind == EventKind.SCREEN],
        "state": status.to_dict(),
        "events": [e.to_dict() for e in events],
    }


class _LoopThread:
    """A private event loop on a daemon thread, for a band opened by :meth:`BleManagedBand.open`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True,
                                        name="nymi-ble-flow")
        self._thread.start()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=5)
        self.loop.close()


class BleManagedBand:
    """A :class:`~hosttools.flows.bands.FlowBand` over BLE and the band management protocol.

    :param backend: the ``ble:ADDRESS`` backend (connected here if it is not yet); its
        ``trusted_ca`` must vouch for the band.
    :param control: performs physical steps (:func:`daemon_control`, or
        ``simulator.control.apply_action`` on a band in this process).
    :param loop: the event loop the backend's connection lives on, running on another thread;
        every method of this class blocks until the band has answered.

    Pushed events the session receives (the capture progress of §8.4) collect in
    :attr:`pushed`.
    """

    simulated = True

    def __init__(self, backend: BleBandBackend, control: Control,
                 loop: asyncio.AbstractEventLoop, *, owner: _LoopThread | None = None) -> None:
        self.backend = backend
        self.loop = loop
        self._control = control
        self._owner = owner
        #: Events the band pushed to this session, in order.
        self.pushed: list[LoggedEvent] = []
        identity = self._run(self._identity())
        self.serial: str = identity.serial
        self.identity = identity
        self.fixture: Fixture = load_fixture(identity.fixture)

    @classmethod
    def open(cls, address: str, *, sim_dir: Path | None = None, hci: HciSpec | None = None,
             timeout: float = 10.0) -> BleManagedBand:
        """Connect to the simulated band ``address`` that a daemon of ``sim_dir`` serves."""
        served = _served(address, sim_dir)
        if served is None:
            raise BandUnreachableError(
                f"ble:{address} is not a band that a 'nymi-sim serve --ble' of "
                f"{sim_dir or default_sim_dir()} keeps on the air", UnreachableReason.NOT_FOUND)
        backend = BleBandBackend(address, hci=hci or served.moniker, timeout=timeout,
                                 trusted_ca=simulation_root())
        owner = _LoopThread()
        try:
            return cls(backend, daemon_control(served.serial, sim_dir), owner.loop, owner=owner)
        except BaseException:
            owner.stop()
            raise

    # -- plumbing ------------------------------------------------------------------------------

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self.loop:
            coro.close()
            raise RuntimeError("BleManagedBand blocks: call it from another thread than the "
                               "event loop of its connection")
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    async def _client(self) -> ManagementClient:
        if self.backend.client is None:
            await self.backend.connect()
        client = (await self.backend.management()).client
        self.pushed.extend(client.pending_events())
        return client

    async def _identity(self) -> BandInfo:
        return await (await self._client()).identity()

    async def _state(self) -> BandStatus:
        return await (await self._client()).status()

    async def _apply(self, step: _Step, params: dict[str, Any]) -> dict[str, Any]:
        client = await self._client()
        mark = (await client.event_log(_PAST_THE_END, limit=1)).end
        extra = await step(client, params)
        logged = await client.full_event_log(mark)
        status = await client.status()
        self.pushed.extend(client.pending_events())
        return {**step_report(status, [item.event for item in logged]), **extra}

    # -- FlowBand ------------------------------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The band's status over the protocol; the setup code as its screen shows it."""
        status = self._run(self._state())
        state = step_report(status, [])
        if status.screen == screens.SETUP_CODE:
            # The person reads the code off the band's screen: the protocol never carries it.
            state["setup_code"] = self._control("status", {}).get("setup_code")
        return state

    def physical(self, action: str, **params: Any) -> dict[str, Any]:
        """A physical step, performed through the control API."""
        return self._control(action, params)

    def application(self, action: str, **params: Any) -> dict[str, Any]:
        """An application step as protocol commands; the report of what the band did."""
        step = STEPS.get(action)
        if step is None:
            raise StepUnavailableError(
                f"no application step {action!r} over the band management protocol "
                f"(steps: {', '.join(STEPS)})")
        return self._run(self._apply(step, params))

    def fixture_value(self, section: str, name: str) -> Any:
        """From the fixture the band's authenticated identity names."""
        return getattr(getattr(self.fixture, section), name)

    @property
    def info(self) -> dict[str, Any]:
        """The band's identity (GET_INFO inside the session)."""
        return self.identity.to_dict()

    def capture_progress(self) -> list[tuple[int, int]]:
        """The ``(sample, of)`` capture progress events pushed to this session so far."""
        return [(int(e.event.data["sample"]), int(e.event.data["of"])) for e in self.pushed
                if e.event.kind == EventKind.CAPTURE and "sample" in e.event.data]

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """End the session and disconnect; stop the private loop if :meth:`open` made one."""
        try:
            self._run(self.backend.close())
        finally:
            owner, self._owner = self._owner, None
            if owner is not None:
                owner.stop()

    def __enter__(self) -> BleManagedBand:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()
