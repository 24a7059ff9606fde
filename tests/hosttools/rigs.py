"""The three ways the flow tests reach bands and servers, behind one interface.

- ``sim``: the band in process (``sim:SERIAL``), the simulator's operator, the embedded NES.
- ``ble``: each band served by its own ``nymi-sim serve --ble 0 --ctaphid-udp`` daemon, driven
  over the band management protocol; the physical world moved by the *console* operator, whose
  prompts a scripted person reads and acts on through the control API (as a person would on the
  band), each step confirmed by the band's own events; FIDO2 through the daemon's CTAPHID-UDP.
- ``http``: the band in process, the NES reached over its HTTP API (uvicorn on a loopback port,
  :class:`hosttools.remote_nes.RemoteNes`).

Setup and assertions use the control API (:meth:`Rig.act`) and the embedded server, which is
the truth every variant ends in.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from hosttools.flows.bands import FlowBand
from hosttools.remote_nes import RemoteNes
from hosttools.site import open_flow_band, served_over_ble
from nymi_device.protocol.model import BandStatus
from nymi_device.protocol.nes import NesClient
from nymi_device.protocol.operator import INSTRUCTIONS, PhysicalStep
from simulator.control import apply_action, daemon_port, send_action
from simulator.fleet import Fleet
from simulator.nes import Nes
from tests.e2e.serve_helpers import serve
from tests.hosttools.served_nes import ServedNes

BANDS = (("AAAH-00125", "nymi-band-3.0"), ("ACAK-00056", "nymi-band-3.0"),
         ("SEOS-00001", "nymi-band-3.0-seos"), ("SNFC-00001", "nymi-band-3.0-secure-nfc"),
         ("BTWO-00001", "nymi-band-2.0"))

#: What the scripted person does on reading each instruction of the console operator.
_PERSON: dict[str, tuple[str, dict[str, Any]]] = {
    INSTRUCTIONS[PhysicalStep.WEAR]: ("wear", {}),
    INSTRUCTIONS[PhysicalStep.TAKE_OFF]: ("remove", {}),
    INSTRUCTIONS[PhysicalStep.CHARGE]: ("charge", {}),
    INSTRUCTIONS[PhysicalStep.UNCHARGE]: ("uncharge", {}),
    INSTRUCTIONS[PhysicalStep.TOUCH_SENSOR]: ("finger", {"match": True}),
    INSTRUCTIONS[PhysicalStep.AUTHENTICATE]: ("finger", {"match": True}),
}


class ScriptedPerson(io.TextIOBase):
    """Reads the console operator's prompts (its ``out``) and does what they say to the band
    through the daemon's control API; types the setup code it reads off the band (its
    ``inp``). ``hold_s`` is how long it holds the bottom button for Delete User Data."""

    def __init__(self, control: Callable[[str, dict[str, Any]], dict[str, Any]],
                 hold_s: float = 10.0) -> None:
        super().__init__()
        self._control = control
        self.hold_s = hold_s
        self.typed: list[str] = []
        self.prompts: list[str] = []
        self.answers = _Answers()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        for line in text.splitlines():
            if line.startswith("> "):
                self.prompts.append(line[2:])
                # The person acts after the operator starts waiting, as people do.
                threading.Timer(0.02, self._act, (line[2:],)).start()
        return len(text)

    def _act(self, prompt: str) -> None:
        if prompt.startswith(INSTRUCTIONS[PhysicalStep.READ_SETUP_CODE]):
            code = self._control("status", {}).get("setup_code") or ""
            self.answers.put(code)
            return
        if prompt.startswith(INSTRUCTIONS[PhysicalStep.DELETE_USER_DATA][:40]):
            self._control("hold", {"button": "bottom", "seconds": self.hold_s})
            return
        for instruction, (action, params) in _PERSON.items():
            if prompt.startswith(instruction):
                self._control(action, params)
                return


class _Answers(io.TextIOBase):
    def __init__(self) -> None:
        super().__init__()
        self._lines: list[str] = []
        self._ready = threading.Condition()

    def put(self, line: str) -> None:
        with self._ready:
            self._lines.append(line)
            self._ready.notify_all()

    def readable(self) -> bool:
        return True

    def readline(self, size: int | None = -1) -> str:
        with self._ready:
            self._ready.wait_for(lambda: bool(self._lines), timeout=30)
            return self._lines.pop(0) + "\n" if self._lines else ""


class Rig:
    """One variant; see the module docstring."""

    def __init__(self, kind: str, fleet: Fleet) -> None:
        self.kind = kind
        self.fleet = fleet
        self._served: list[ServedNes] = []
        self._remotes: list[RemoteNes] = []
        self._daemons: dict[str, int] = {}

    # -- the physical world, as the test's own hands ---------------------------------------------
    def act(self, serial: str, action: str, **params: Any) -> dict[str, Any]:
        port = daemon_port(self.fleet.band_dir(serial))
        if port is not None:
            return send_action(port, action, params)
        with self.fleet.open_band(serial) as band:
            return apply_action(band, action, params)

    def status(self, serial: str) -> BandStatus:
        return BandStatus.from_dict(self.act(serial, "status")["state"])

    # -- what a flow holds ----------------------------------------------------------------------
    @contextlib.contextmanager
    def open(self, serial: str) -> Iterator[FlowBand]:
        if self.kind != "ble":
            with open_flow_band(f"sim:{serial}", sim_dir=self.fleet.root) as band:
                yield band
            return
        served = next(s for s in served_over_ble(self.fleet.root) if s.serial == serial)

        def control(action: str, params: dict[str, Any]) -> dict[str, Any]:
            return send_action(served.control_port, action, params)

        hold = self.fleet.fixture_of(serial).timing.wipe_hold_s
        person = ScriptedPerson(control, hold)
        with open_flow_band(f"ble:{served.address}", sim_dir=self.fleet.root,
                            operator="console", prompts=person, answers=person.answers,
                            timeout=30) as band:
            yield band

    def client(self, nes: Nes) -> NesClient:
        """The server as the flows reach it in this variant."""
        if self.kind != "http":
            return nes
        served = ServedNes(nes)
        self._served.append(served)
        remote = RemoteNes.open(served.url)
        self._remotes.append(remote)
        return remote

    def close(self) -> None:
        for remote in self._remotes:
            remote.close()
        for served in self._served:
            served.stop()


def make_fleet(root: Path) -> Fleet:
    fleet = Fleet(root, durable=False)
    for serial, fixture in BANDS:
        fleet.add_band(fixture, serial)
    return fleet


@contextlib.contextmanager
def ble_daemons(fleet: Fleet) -> Iterator[None]:
    """Every band of ``fleet`` on the air, each served by its own daemon."""
    with contextlib.ExitStack() as stack:
        for serial, _ in BANDS:
            fido2 = fleet.fixture_of(serial).ctap is not None
            stack.enter_context(serve(fleet.root, serial, "--ble", "0", ctaphid=fido2))
        yield


def reset_band(rig: Rig, serial: str) -> None:
    """A band the way a fresh fleet has it: no user data, off the wrist and charger."""
    state = rig.status(serial)
    if state.on_wrist:
        rig.act(serial, "remove")
    if state.enrollment.value != "unenrolled":
        if not rig.status(serial).on_charger:
            rig.act(serial, "charge")
        rig.act(serial, "hold", button="bottom",
                seconds=rig.fleet.fixture_of(serial).timing.wipe_hold_s)
    if rig.status(serial).on_charger:
        rig.act(serial, "uncharge")
