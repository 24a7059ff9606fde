"""A fleet directory: many simulated bands that persist between commands.

Layout (default ``./.nymi-sim``, shared by ``nymi-sim`` and ``nymi-band``)::

    bands/<SERIAL>/band.json     which fixture the band was built from
    bands/<SERIAL>/flash/        the band's durable memory (FlashStorage)
    bands/<SERIAL>/world.json    RAM and physical world between commands (atomic replace)
    bands/<SERIAL>/events.jsonl  every event the band emitted, in order

A command opens a band with :meth:`Fleet.open_band`; when the block ends without an error the
band's pending interactions are settled and its world and new events are saved. A block that
raises saves nothing, so a refused action leaves the directory as it was.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nymi_device.errors import InvalidInputError, UnknownBandError
from nymi_device.protocol.model import BandEvent
from simulator.band.band import EmulatedBand
from simulator.band.management_identity import provision_management_identity
from simulator.band.records import Identity
from simulator.band.storage import FlashStorage, atomic_write
from simulator.clock import VirtualClock
from simulator.fixtures import SERIAL_PATTERN, Fixture, load_fixture

DEFAULT_SIM_DIR = Path(".nymi-sim")
_SERIAL = re.compile(SERIAL_PATTERN)


def default_sim_dir() -> Path:
    return Path(os.environ.get("NYMI_SIM_DIR", str(DEFAULT_SIM_DIR)))


def check_serial(serial: str) -> str:
    if not _SERIAL.match(serial):
        raise InvalidInputError(
            f"serial {serial!r} is not of the form AAAA-00000 (4 capital letters, '-', 5 digits)"
        )
    return serial


class Fleet:
    """The bands of one fleet directory."""

    def __init__(self, root: Path | None = None, *, durable: bool = True) -> None:
        self.root = root if root is not None else default_sim_dir()
        self.durable = durable

    @property
    def bands_dir(self) -> Path:
        return self.root / "bands"

    def serials(self) -> list[str]:
        if not self.bands_dir.is_dir():
            return []
        return sorted(
            p.name for p in self.bands_dir.iterdir()
            if _SERIAL.match(p.name) and (p / "band.json").is_file()
        )

    def band_dir(self, serial: str) -> Path:
        check_serial(serial)
        path = self.bands_dir / serial
        if not (path / "band.json").is_file():
            known = ", ".join(self.serials()) or "none"
            raise UnknownBandError(f"no simulated band {serial} in {self.root} (known: {known})")
        return path

    def fixture_of(self, serial: str) -> Fixture:
        meta = json.loads((self.band_dir(serial) / "band.json").read_text())
        return load_fixture(str(meta["fixture"]))

    def add_band(self, fixture_id: str, serial: str) -> EmulatedBand:
        """Create a band from a fixture; all or nothing (built aside, then renamed in)."""
        check_serial(serial)
        fixture = load_fixture(fixture_id)
        if (self.bands_dir / serial).exists():
            raise InvalidInputError(f"a band with serial {serial} already exists in {self.root}")
        self.bands_dir.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".new-{serial}-", dir=self.bands_dir))
        try:
            clock = VirtualClock()
            with FlashStorage.open(staging / "flash", durable=self.durable) as storage:
                identity = Identity.new(serial, fixture.id)
                band = EmulatedBand.create(fixture, storage, clock, identity)
                # The band's identity key and its certificate from the manufacturer CA, which
                # the management protocol's secure session proves (docs/protocol.md).
                provision_management_identity(storage, serial)
                self._save(staging, band)
            (staging / "band.json").write_text(json.dumps({"serial": serial,
                                                           "fixture": fixture.id}) + "\n")
            os.rename(staging, self.bands_dir / serial)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return band

    @contextlib.contextmanager
    def open_band(self, serial: str, *, save: bool = True) -> Iterator[EmulatedBand]:
        """The band as it was left; saved (settled) when the block ends without error."""
        path = self.band_dir(serial)
        fixture = self.fixture_of(serial)
        world = json.loads((path / "world.json").read_text())
        clock = VirtualClock(start=float(world["time"]))
        with FlashStorage.open(path / "flash", durable=self.durable) as storage:
            band = EmulatedBand.restore(fixture, storage, clock, world)
            yield band
            if save:
                band.settle()
                self._save(path, band)

    def save_band(self, serial: str, band: EmulatedBand, saved_events: int = 0, *,
                  durable: bool | None = None) -> int:
        """Keep an open band's world, and its events after the first ``saved_events`` (those
        are already in the log); returns how many of its events the log now holds.

        ``durable=False`` skips the fsync: the world is the band's RAM, its flash is the truth
        (a checkpoint lost to a crash loses only the physical world since the last durable one).
        """
        self._save(self.band_dir(serial), band, saved_events, durable=durable)
        return len(band.events)

    def _save(self, path: Path, band: EmulatedBand, saved_events: int = 0, *,
              durable: bool | None = None) -> None:
        atomic_write(path / "world.json",
                     json.dumps(band.world(), sort_keys=True).encode() + b"\n",
                     durable=self.durable if durable is None else durable)
        new_events = band.events[saved_events:]
        if new_events:
            with open(path / "events.jsonl", "a", encoding="utf-8") as f:
                for event in new_events:
                    f.write(json.dumps(event.to_dict(), sort_keys=True) + "\n")

    def event_log(self, serial: str, last: int | None = None) -> list[BandEvent]:
        path = self.band_dir(serial) / "events.jsonl"
        if not path.exists():
            return []
        lines = path.read_text(encoding="utf-8").splitlines()
        if last is not None:
            lines = lines[-last:] if last > 0 else []
        events: list[BandEvent] = []
        for line in lines:
            with contextlib.suppress(ValueError, KeyError):
                events.append(BandEvent.from_dict(json.loads(line)))
        return events


def describe(band: EmulatedBand, since: int = 0) -> dict[str, Any]:
    """What a command reports: the band's resulting screen, haptics, state and events."""
    new = band.events[since:]
    return {
        "serial": band.identity.serial,
        "screen": band.screen,
        "setup_code": band.setup_code if band.screen == "Setup code" else None,
        "haptics": [e.data["pattern"] for e in new if e.kind == "haptic"],
        "screens": [e.data["screen"] for e in new if e.kind == "screen"],
        "state": band.status().to_dict(),
        "events": [e.to_dict() for e in new],
    }
