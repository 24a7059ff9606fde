"""Wiring of simulated bands for the host tools: which backend and which operator a target gets.

This is one of the two places in ``hosttools`` that know the simulator exists (the other is the
demo): everything else sees bands through :mod:`nymi_device`, people through an
:class:`~nymi_device.protocol.operator.Operator`, and servers through
:class:`~nymi_device.protocol.nes.NesService`.

- ``sim:SERIAL`` — the band of the fleet directory, in process or through the daemon serving
  it; the simulator's operator moves its physical world through the control API.
- ``ble:ADDRESS`` of a band a ``nymi-sim serve --ble`` daemon of the fleet keeps on the air —
  the band management protocol over the daemon's virtual radio, the simulation's manufacturer
  CA trusted for that band alone, FIDO2 through the daemon's front end; the simulator's operator
  (or, with ``operator="console"``, a person at the console).
- any other ``ble:ADDRESS`` — a real band: standard BLE, and a person at the console whose every
  step the band confirms where it can.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, TextIO

from hosttools.flows.bands import FlowBand
from hosttools.flows.console import ConsoleOperator
from nymi_device.backend import parse_target
from nymi_device.band import Band
from nymi_device.errors import (
    BandUnreachableError,
    InvalidInputError,
    InvalidTargetError,
    UnreachableReason,
)
from nymi_device.protocol.nes import NesService
from nymi_device.protocol.operator import Operator
from nymi_device.sync import SyncBand
from simulator.band.management_identity import simulation_root
from simulator.control import CONTROL_FILE, daemon_port, send_action
from simulator.fixtures import Fixture, all_fixtures
from simulator.fleet import Fleet, default_sim_dir
from simulator.nes import Nes, Site, open_site
from simulator.operator import SimOperator
from simulator.sim_backend import SimBackend

OperatorChoice = Literal["auto", "sim", "console"]

__all__ = ["LAYOUTS", "ServedBle", "SiteServers", "band_models", "ble_target_options",
           "create_site", "describe_site", "fleet_root", "guarded_site", "open_flow_band",
           "open_nes", "open_site_servers", "served_over_ble", "site_exists"]


@dataclass(frozen=True)
class ServedBle:
    """A band that a running ``nymi-sim serve --ble`` keeps on the air."""

    serial: str
    address: str
    moniker: str
    control_port: int
    fido2: str | None
    """Where its authenticator is served (``udp:…`` / ``pcsc:…``), if anywhere."""


def _served_fido2(meta: dict[str, Any]) -> str | None:
    udp = meta.get("ctaphid_udp")
    if isinstance(udp, list) and len(udp) == 2:
        return f"udp:127.0.0.1:{udp[0]}" + (f"/{udp[1]}" if udp[1] is not None else "")
    vpcd = meta.get("vpcd")
    if isinstance(vpcd, dict) and vpcd.get("reader"):
        return f"pcsc:{vpcd['reader']}"
    return None


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
            meta = json.loads((band_dir / CONTROL_FILE).read_text())
        except (OSError, ValueError):
            continue
        ble = meta.get("ble") if isinstance(meta, dict) else None
        if isinstance(ble, dict) and {"address", "moniker"} <= set(ble):
            found.append(ServedBle(serial, str(ble["address"]).upper(), str(ble["moniker"]),
                                   port, _served_fido2(meta)))
    return found


def _served(address: str, sim_dir: Path | None) -> ServedBle | None:
    wanted = address.upper()
    return next((s for s in served_over_ble(sim_dir) if s.address == wanted), None)


def ble_target_options(address: str, hci: str | None = None,
                       sim_dir: Path | None = None) -> dict[str, Any]:
    """``Band.from_target("ble:ADDRESS", **options)`` options for ``nymi-band``.

    A band that a daemon of the fleet directory serves is simulated: its identity is vouched
    for by the simulation authority, whose root is trusted for it alone, its radio is the
    daemon's unless ``hci`` names another, and its authenticator is the daemon's front end. Any
    other address gets only ``hci``.
    """
    served = _served(address, sim_dir)
    if served is None:
        return {"hci": hci} if hci else {}
    options: dict[str, Any] = {"hci": hci or served.moniker, "trusted_ca": simulation_root()}
    if served.fido2:
        options["fido2"] = served.fido2
    return options


def _daemon_control(serial: str, sim_dir: Path | None) -> Any:
    band_dir = Fleet(sim_dir or default_sim_dir()).band_dir(serial)

    def control(action: str, params: Any) -> dict[str, Any]:
        port = daemon_port(band_dir)
        if port is None:
            raise BandUnreachableError(
                f"band {serial} is not running: start 'nymi-sim serve --ble PORT --band "
                f"{serial}' (a band on the air needs a running band)",
                UnreachableReason.POWERED_OFF)
        return send_action(port, action, dict(params))

    return control


def open_flow_band(target: str, *, sim_dir: Path | None = None, hci: str | None = None,
                   operator: OperatorChoice = "auto", fido2: str | None = None,
                   prompts: TextIO | None = None, answers: TextIO | None = None,
                   timeout: float | None = None) -> FlowBand:
    """Open ``target`` for a flow (connected once, held until the flow closes it) with the
    operator of its physical world.

    :param operator: ``sim`` (the control API; only for simulated bands), ``console`` (a
        person; prompts on ``prompts``, typed answers from ``answers``), or ``auto``
        (the simulator's for simulated bands, the console for real ones).
    :param fido2: where a real band's authenticator is reached (``pcsc:READER``).
    """
    scheme, address = parse_target(target)

    def console() -> ConsoleOperator:
        kwargs: dict[str, Any] = {} if timeout is None else {"timeout": timeout}
        return ConsoleOperator(prompts, answers, **kwargs)

    if scheme == "sim":
        backend = SimBackend(address, sim_dir or default_sim_dir())
        band = SyncBand(band=Band(backend))
        chosen: Operator = console() if operator == "console" else SimOperator(
            backend.control, backend.fixture)
        return _flow_band(band, chosen)
    if scheme == "ble":
        served = _served(address, sim_dir)
        options = ble_target_options(address, hci, sim_dir)
        if fido2:
            options["fido2"] = fido2
        if served is None:
            if operator == "sim":
                raise InvalidTargetError(f"ble:{address} is not a simulated band that a "
                                         "'nymi-sim serve --ble' of the fleet keeps on the air")
            return _flow_band(SyncBand(target, **options), console())
        band = SyncBand(target, **options)
        if operator == "console":
            return _flow_band(band, console())
        fixture = Fleet(sim_dir or default_sim_dir()).fixture_of(served.serial)
        return _flow_band(band, SimOperator(_daemon_control(served.serial, sim_dir), fixture))
    raise InvalidTargetError(
        f"the band flows need a sim: or ble: target, not {scheme}: ({target}); a {scheme}: "
        "target reaches the band's FIDO2 authenticator only (use 'nymi-band fido2 …')")


def _flow_band(band: SyncBand, operator: Operator) -> FlowBand:
    try:
        return FlowBand(band, operator)
    except BaseException:
        band.close()
        raise


# -- the enterprise server of a fleet directory ------------------------------------------------

#: layout → the names of its servers.
LAYOUTS = {"single": ("nes",), "it-ot": ("enrollment", "registration")}
_SITE_FILE = Path("nes") / "site.json"


def fleet_root(sim_dir: Path | None) -> Path:
    return sim_dir or default_sim_dir()


def site_exists(root: Path) -> bool:
    return (root / _SITE_FILE).is_file()


@contextlib.contextmanager
def guarded_site(sim_dir: Path | None, server: str | None = None,
                 layout: str | None = None) -> Iterator[Site]:
    """The site of the fleet directory, created (``layout``, default single) if there is none.

    If there was none and the command fails, the site it created is removed again; a ``server``
    the new site would not have is refused before anything is written.
    """
    root = fleet_root(sim_dir)
    fresh = not site_exists(root)
    if fresh:
        servers = LAYOUTS[layout or "single"]
        if server is not None and server not in servers and "://" not in server:
            other = next((name for name, names in LAYOUTS.items() if server in names), None)
            hint = (f"create it with 'nymi-band nes site create --layout {other}'" if other
                    else f"the {layout or 'single'} layout has {', '.join(servers)}")
            raise InvalidInputError(f"there is no NES site in {root} with a server "
                                    f"{server!r}: {hint}")
    nes_dir = root / "nes"
    created_dir = fresh and not nes_dir.exists()
    try:
        with open_site(root, layout=layout) as site:
            yield site
    except BaseException:
        if fresh and created_dir:
            shutil.rmtree(nes_dir, ignore_errors=True)
        elif fresh:
            (root / _SITE_FILE).unlink(missing_ok=True)
        raise



def _describe(site: Site, root: Path) -> dict[str, Any]:
    return {"root": str(root), "layout": site.layout.value,
            "servers": sorted(site.servers), "users": len(site.directory.users())}



def describe_site(root: Path) -> dict[str, Any]:
    """Layout, servers and user count of the fleet's existing site (creates nothing)."""
    if not site_exists(root):
        raise InvalidInputError(f"there is no NES site in {root}: create one with "
                                "'nymi-band nes site create [--layout it-ot]'")
    with open_site(root) as site:
        return _describe(site, root)


def create_site(root: Path, layout: str) -> dict[str, Any]:
    """Create the fleet's site (databases and directory) without a server."""
    if layout not in LAYOUTS:
        raise InvalidInputError(f"--layout is single or it-ot, not {layout!r}")
    if site_exists(root):
        with open_site(root) as existing:
            raise InvalidInputError(
                f"{root} already has a {existing.layout.value} NES site (servers: "
                f"{', '.join(sorted(existing.servers))}); use another --sim-dir")
    with guarded_site(root, layout=layout) as site:
        return _describe(site, root)


@dataclass
class SiteServers:
    """The servers of a site a command works with."""

    named: NesService
    """The server ``--nes`` names (the enrollment server by default)."""
    enrollment: NesService
    registration: NesService | None


@contextlib.contextmanager
def open_site_servers(sim_dir: Path | None, name: str | None) -> Iterator[SiteServers]:
    """The fleet's site, its server ``name`` and its enrollment and registration servers."""
    with guarded_site(sim_dir, name) as site:
        yield SiteServers(site.server(name), site.enrollment, site.registration)


@contextlib.contextmanager
def open_nes(sim_dir: Path | None, name: str | None, *, user: str | None = None,
             password: str | None = None) -> Iterator[NesService]:
    """The server ``name`` names: nothing for the fleet's own site, a server name of an IT/OT
    site, a database URL, or ``http(s)://HOST:PORT/NAME`` (the HTTP API, administrator
    credentials from ``user``/``password`` or ``NYMI_NES_USER`` / ``NYMI_NES_PASSWORD``)."""
    if name and name.startswith(("http://", "https://")):
        from hosttools.remote_nes import RemoteNes

        with RemoteNes.open(name, user=user, password=password, env=os.environ) as remote:
            yield remote
        return
    if name and "://" in name:
        with Nes.open(name) as nes:
            yield nes
        return
    with open_site_servers(sim_dir, name) as servers:
        yield servers.named


def band_models() -> list[Fixture]:
    """Every band model the stack knows (its firmware fixtures)."""
    return all_fixtures()
