"""``nymi-band scan`` and ``nymi-band watch``: the bands in range, their taps and presence, live.

Both listen on the Bluetooth radio chosen with ``--hci`` (a Bumble transport moniker:
``tcp-client:127.0.0.1:PORT`` for the simulator's radio, ``usb:0`` for a dongle; without it, the
operating system's stack). ``--target ble:ADDRESS`` narrows them to one band.

* ``scan``: a live table of the bands heard (serial, model from the advertised name, advertised
  state, RSSI, TX power); ``--json`` prints the sightings once the scan ends.
* ``watch``: the same bands with the rolling averages, proximity and Lock Control state the
  Bluetooth endpoint derives (:mod:`nymi_device.presence`), and the taps, near/away changes and
  locks as they happen; ``--json`` prints the event list at the end (after ``--seconds``, or
  Ctrl-C). Event times are seconds since the watch started.

The command-line tools register these with :func:`register_ble_commands`.
"""

from __future__ import annotations

import contextlib
import time
import tomllib
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table

from nymi_device.cli_support import emit_json
from nymi_device.errors import (
    BandError,
    BandUnreachableError,
    InvalidInputError,
    UnreachableReason,
)

if TYPE_CHECKING:  # the radio stack (bleak, Bumble) is imported when a command runs
    from nymi_device.presence import PresenceConfig, PresenceEvent
    from nymi_device.protocol.fido_ble import BandFlags
    from nymi_device.transport.ble import BandSighting

__all__ = [
    "MODEL_BY_NAME_PREFIX",
    "BleOptions",
    "PresenceMonitor",
    "Seen",
    "SightingLog",
    "model_from_name",
    "register_ble_commands",
    "state_names",
    "state_text",
]

#: Advertised name prefix (before ``-SERIAL``) → model. Bands 2.0 and 3.0 share a prefix.
MODEL_BY_NAME_PREFIX = {"NymiRef": "CTAP 2.1 Reference Band", "Nymi": "Nymi Band"}
#: ``watch`` without ``--seconds`` runs until Ctrl-C; the scan itself needs a length.
_UNTIL_STOPPED = 7 * 24 * 3600.0
_REFRESH_S = 0.25
_RECENT_EVENTS = 8
_NO_WRAP = ("Serial", "RSSI", "Address", "Proximity")
#: The state in a table cell: short words (the JSON output has the full names).
_SHORT_STATE = {"enrolled": "enrolled", "authenticated": "auth", "on-wrist": "worn",
                "on-charger": "charging", "locked-out": "locked-out", "fido-ble": "fido"}


class BleOptions(Protocol):
    """What the commands need from the tool's global options."""

    hci: str | None
    target: str | None


def model_from_name(name: str | None, serial: str | None) -> str:
    """The model a band's advertised name (``<prefix>-<serial>``) stands for."""
    if not name:
        return "?"
    if serial and name.endswith(f"-{serial}"):
        prefix = name[: -len(serial) - 1]
    else:
        prefix = name.split("-", 1)[0]
    return MODEL_BY_NAME_PREFIX.get(prefix, prefix)


def state_names(flags: BandFlags | None) -> list[str]:
    """The advertised state byte as names (``on-wrist``, ...); empty if not advertised."""
    if flags is None:
        return []
    from nymi_device.protocol.fido_ble import BandFlags

    return [(member.name or "").lower().replace("_", "-") for member in BandFlags
            if member in flags]


def state_text(flags: BandFlags | None) -> str:
    """The advertised state for a table cell (``-``: not advertised, or nothing set)."""
    return " ".join(_SHORT_STATE.get(name, name) for name in state_names(flags)) or "-"


def band_key(sighting: BandSighting) -> str:
    """Bands are known by serial; one without our beacon by its address."""
    return sighting.serial or sighting.address


@dataclass
class Seen:
    """The latest advertisement of one band, and how many were heard."""

    sighting: BandSighting
    first_s: float
    last_s: float
    count: int = 1

    def to_dict(self) -> dict[str, Any]:
        s = self.sighting
        return {"serial": s.serial, "address": s.address, "name": s.name,
                "model": model_from_name(s.name, s.serial),
                "state": state_names(s.beacon.flags if s.beacon else None),
                "rssi": s.rssi, "tx_power": s.tx_power, "fido_ble": s.fido_ble,
                "advertisements": self.count}


@dataclass
class SightingLog:
    """Every band heard, narrowed to ``only`` (an address or serial) when given."""

    only: str | None = None
    clock: Callable[[], float] = time.monotonic
    bands: dict[str, Seen] = field(default_factory=dict)

    def accepts(self, sighting: BandSighting) -> bool:
        wanted = self.only
        return wanted is None or wanted.upper() in (sighting.address.upper(),
                                                    (sighting.serial or "").upper())

    def record(self, sighting: BandSighting, time_s: float | None = None) -> bool:
        if not self.accepts(sighting):
            return False
        now = self.clock() if time_s is None else time_s
        key = band_key(sighting)
        seen = self.bands.get(key)
        if seen is None:
            self.bands[key] = Seen(sighting, now, now)
        else:
            seen.sighting, seen.last_s, seen.count = sighting, now, seen.count + 1
        return True

    def to_list(self) -> list[dict[str, Any]]:
        return [self.bands[key].to_dict() for key in sorted(self.bands)]

    def table(self, title: str = "Bands in range") -> Table:
        table = Table(title=title, title_justify="left")
        for column in ("Serial", "Model", "State", "RSSI", "TX power", "Address", "Adverts"):
            table.add_column(column, justify="right" if column in (
                "RSSI", "TX power", "Adverts") else "left", no_wrap=column in _NO_WRAP)
        for key in sorted(self.bands):
            row = self.bands[key].to_dict()
            beacon = self.bands[key].sighting.beacon
            table.add_row(row["serial"] or "-", row["model"],
                          state_text(beacon.flags if beacon else None),
                          f"{row['rssi']} dBm", _dbm(row["tx_power"]), row["address"],
                          str(row["advertisements"]))
        return table


class PresenceMonitor:
    """A :class:`~nymi_device.presence.PresenceTracker` fed from a scan.

    Each sighting becomes a sample at ``clock()`` (or at an explicit ``time_s``); :meth:`tick`
    lets the timers run between advertisements. ``clock`` must not go backwards.
    """

    def __init__(self, config: PresenceConfig | None = None, *,
                 clock: Callable[[], float] = time.monotonic, only: str | None = None) -> None:
        from nymi_device.presence import PresenceConfig, PresenceTracker

        self.config = config or PresenceConfig()
        self.tracker = PresenceTracker(self.config)
        self.clock = clock
        self.log = SightingLog(only, clock)
        self.events: list[PresenceEvent] = []

    def feed(self, sighting: BandSighting, time_s: float | None = None) -> list[PresenceEvent]:
        now = self.clock() if time_s is None else time_s
        if not self.log.record(sighting, now):
            return []
        flags = sighting.beacon.flags if sighting.beacon is not None else None
        events = self.tracker.feed(band_key(sighting), now, sighting.rssi, flags)
        self.events += events
        return events

    def tick(self, time_s: float | None = None) -> list[PresenceEvent]:
        events = self.tracker.advance(self.clock() if time_s is None else time_s)
        self.events += events
        return events

    def events_of(self, serial: str) -> list[PresenceEvent]:
        return [event for event in self.events if event.serial == serial]

    def render(self, now: float | None = None) -> RenderableType:
        now = self.clock() if now is None else now
        bands = Table(title="Bands in range", title_justify="left")
        columns = ["Serial", "Model", "State", "RSSI", "Tap avg", "Long avg", "Proximity"]
        if self.config.lock_control:
            columns.append("Lock")
        for column in columns:
            bands.add_column(column, justify="right" if "avg" in column or column == "RSSI"
                             else "left", no_wrap=column in _NO_WRAP)
        for key in sorted(self.log.bands):
            seen, presence = self.log.bands[key], self.tracker.presence(key)
            if presence is None:
                continue
            sighting = seen.sighting
            proximity = presence.proximity.value if presence.in_range else "out of range"
            row = [sighting.serial or sighting.address, model_from_name(sighting.name,
                                                                        sighting.serial),
                   state_text(presence.flags), f"{sighting.rssi} dBm",
                   _average(presence.tap_average), _average(presence.long_average), proximity]
            if self.config.lock_control:
                deadline = presence.countdown_deadline_s
                row.append(f"locking in {max(0.0, deadline - now):.0f} s" if deadline is not None
                           else "locked" if presence.locked else "unlocked")
            bands.add_row(*row)
        recent = Table(title="Events", title_justify="left")
        for column in ("Time", "Band", "Event", "Detail"):
            recent.add_column(column)
        for event in self.events[-_RECENT_EVENTS:]:
            recent.add_row(f"{event.time_s:.1f} s", event.serial, event.kind.value,
                           _detail(event))
        return Group(bands, recent)


def _dbm(value: int | None) -> str:
    return "-" if value is None else f"{value} dBm"


def _average(value: float | None) -> str:
    return "filling" if value is None else f"{value:.1f}"


def _detail(event: PresenceEvent) -> str:
    parts = [event.detail] if event.detail else []
    if event.rssi_avg is not None:
        parts.append(f"average {event.rssi_avg:.1f} dBm")
    if event.deadline_s is not None:
        parts.append(f"locks at {event.deadline_s:.1f} s")
    return ", ".join(parts)


def only_band(options: BleOptions) -> str | None:
    """The address (or serial) of a ``ble:`` target; other targets do not narrow a scan."""
    target = options.target
    if target and target.lower().startswith("ble:"):
        return target[4:].split("?", 1)[0] or None
    return None


def check_seconds(seconds: float | None) -> None:
    if seconds is not None and not seconds > 0:
        raise InvalidInputError(f"--seconds must be more than 0, got {seconds:g}")


def load_nbe_config(path: Path | None, **overrides: Any) -> PresenceConfig:
    """The parameters of an ``nbe.toml`` (if given) with command-line ``overrides`` on top."""
    from nymi_device.presence import PresenceConfig

    values: dict[str, Any] = {}
    if path is not None:
        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise InvalidInputError(f"cannot read {path}: {exc.strerror or exc}") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise InvalidInputError(f"{path} is not valid TOML: {exc}") from exc
    return PresenceConfig.from_nbe_toml(
        values, **{key: value for key, value in overrides.items() if value is not None})


async def _listen(seconds: float, hci: str | None,
                  on_sighting: Callable[[BandSighting], object]) -> None:
    from nymi_device.transport.ble import scan_bands

    def detected(sighting: BandSighting) -> None:
        on_sighting(sighting)

    try:
        await scan_bands(seconds, hci=hci, on_sighting=detected)
    except BandError:
        raise
    except OSError as exc:  # no OS Bluetooth stack (no D-Bus / BlueZ) and no --hci
        raise BandUnreachableError(
            f"scan: no Bluetooth stack reachable ({exc.strerror or exc}); choose a radio "
            "with --hci (e.g. tcp-client:127.0.0.1:PORT)", UnreachableReason.NO_ADAPTER) from exc


async def _run_live(work: Coroutine[Any, Any, None], render: Callable[[], RenderableType],
                    console: Console | None,
                    on_refresh: Callable[[], object] | None = None) -> None:
    """Run ``work``; every refresh, call ``on_refresh`` and redraw (when ``console`` is given).

    The table appears after the first refresh, so a radio that cannot be opened gives its
    one-line error without an empty table before it.
    """
    import asyncio

    task = asyncio.ensure_future(work)
    try:
        await asyncio.wait({task}, timeout=_REFRESH_S)
        if task.done() and task.exception() is not None:
            task.result()
        live = (Live(render(), console=console, refresh_per_second=1 / _REFRESH_S)
                if console is not None else None)
        with live if live is not None else contextlib.nullcontext():
            while not task.done():
                await asyncio.wait({task}, timeout=_REFRESH_S)
                if on_refresh is not None:
                    on_refresh()
                if live is not None:
                    live.update(render())
        task.result()
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


Json = Annotated[bool, typer.Option("--json", help="Print the result as JSON at the end.")]
Hci = Annotated[str | None, typer.Option(
    "--hci", help="The Bluetooth radio as a Bumble transport moniker (tcp-client:127.0.0.1:PORT, "
    "usb:0); default: the tool's --hci, else the OS stack.")]


def register_ble_commands(app: typer.Typer,
                          get_options: Callable[[typer.Context], BleOptions]) -> None:
    """Add ``scan`` and ``watch`` to ``app``; ``get_options(ctx)`` gives ``.hci``, ``.target``."""

    @app.command("scan")
    def scan_cmd(
        ctx: typer.Context,
        seconds: Annotated[float, typer.Option(
            "--seconds", help="How long to listen.")] = 5.0,
        hci: Hci = None,
        as_json: Json = False,
    ) -> None:
        """The bands in range: serial, model, advertised state, RSSI and TX power, live."""
        import asyncio

        check_seconds(seconds)
        options = get_options(ctx)
        log = SightingLog(only_band(options))
        console = None if as_json else Console(highlight=False)
        asyncio.run(_run_live(_listen(seconds, hci or options.hci, log.record),
                              log.table, console))
        if as_json:
            emit_json(log.to_list())
        elif not log.bands:
            Console(highlight=False).print("No bands heard.")

    @app.command("watch")
    def watch_cmd(
        ctx: typer.Context,
        seconds: Annotated[float | None, typer.Option(
            "--seconds", help="Stop after this long (default: at Ctrl-C).")] = None,
        hci: Hci = None,
        nbe_config: Annotated[Path | None, typer.Option(
            "--nbe-config", help="Read rssi_window_tap, rssi_window_long and "
            "rssi_tap_threshold from this nbe.toml.")] = None,
        window_tap: Annotated[int | None, typer.Option(
            "--rssi-window-tap", help="Samples in the tap average (nbe.toml default 10).")] = None,
        window_long: Annotated[int | None, typer.Option(
            "--rssi-window-long", help="Samples in the proximity average (default 50).")] = None,
        tap_threshold: Annotated[int | None, typer.Option(
            "--rssi-tap-threshold", help="Tap threshold in dBm, 0 or negative; 0 disables taps "
            "(default -42).")] = None,
        proximity_threshold: Annotated[float | None, typer.Option(
            "--proximity-threshold", help="Close proximity: long average at or above this many "
            "dBm (default -50).")] = None,
        lock_control: Annotated[bool, typer.Option(
            "--lock-control/--no-lock-control",
            help="Show Nymi Lock Control (off by default, as in the policy).")] = False,
        lock_when_away: Annotated[bool, typer.Option(
            "--lock-when-away/--no-lock-when-away", help="Lock Control: lock when away.")] = True,
        unlock_when_present: Annotated[bool, typer.Option(
            "--unlock-when-present/--no-unlock-when-present",
            help="Lock Control: unlock when present.")] = True,
        as_json: Json = False,
    ) -> None:
        """Bands in range with their RSSI, taps and presence changes, live."""
        import asyncio

        check_seconds(seconds)
        config = load_nbe_config(
            nbe_config, rssi_window_tap=window_tap, rssi_window_long=window_long,
            rssi_tap_threshold=tap_threshold, proximity_threshold=proximity_threshold,
            lock_control=lock_control, lock_when_away=lock_when_away,
            unlock_when_present=unlock_when_present)
        options = get_options(ctx)
        started = time.monotonic()
        monitor = PresenceMonitor(config, clock=lambda: time.monotonic() - started,
                                  only=only_band(options))
        console = None if as_json else Console(highlight=False)
        listen = _listen(seconds if seconds is not None else _UNTIL_STOPPED,
                         hci or options.hci, monitor.feed)
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_run_live(listen, monitor.render, console, monitor.tick))
        monitor.tick()
        if as_json:
            emit_json([event.to_dict() for event in monitor.events])
