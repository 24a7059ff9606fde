"""A fleet directory: many simulated bands that persist between commands.

Layout (default ``./.nymi-sim``, shared by ``nymi-sim`` and ``nymi-band``)::

    bands/<SERIAL>/band.json     which fixture the band was built from
    bands/<SERIAL>/flash/        the band's durable memory (FlashStorage)
    bands/<SERIAL>/world.json    RAM and physical world between commands (atomic replace)
    bands/<SERIAL>/events.jsonl  every event the band emitted, in order

A command opens a band with :meth:`Fleet.open_band`; when the block ends without an error the
band's pending interactions are settled and its world and new events are saved. A block that
raises saves nothing, so a refused action leaves the directory as it was.

Opening checks that the files belong together before anything is written: ``band.json`` and
``world.json`` name this serial, the identity on flash names this serial and fixture, and the
flash holds at least every commit the world saw (``flash_seq``), so a journal rolled back to an
earlier, intact state is refused rather than replayed. Damage is refused in one line
(:class:`~nymi_device.errors.StorageError`). Delete User Data also reaches the event log: the
Band Label is blanked in every event the band kept before the wipe.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from nymi_device.errors import BandError, InvalidInputError, StorageError, UnknownBandError
from nymi_device.protocol.model import BandEvent, EventKind
from simulator.band.band import EmulatedBand
from simulator.band.management_identity import provision_management_identity
from simulator.band.records import Identity
from simulator.band.storage import FlashStorage, atomic_write
from simulator.clock import VirtualClock
from simulator.fixtures import SERIAL_PATTERN, Fixture, load_fixture

DEFAULT_SIM_DIR = Path(".nymi-sim")
_SERIAL = re.compile(SERIAL_PATTERN)
_FIXTURE_ID = re.compile(r"^[a-z0-9][a-z0-9.-]{0,63}$")
#: Event data fields that hold the wearer's data (Delete User Data blanks them in the log).
_USER_DATA_FIELDS = ("label", "band_label")


def _not_json_constant(name: str) -> object:
    raise ValueError(f"{name} is not a number JSON allows")


def _check_finite(value: object) -> None:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a finite number")
    if isinstance(value, dict):
        for item in value.values():
            _check_finite(item)
    elif isinstance(value, list):
        for item in value:
            _check_finite(item)


def read_json_object(path: Path) -> dict[str, Any]:
    """A JSON object file of the fleet directory; one-line :class:`StorageError` if damaged."""
    try:
        value = json.loads(path.read_bytes().decode("utf-8"), parse_constant=_not_json_constant)
        _check_finite(value)
    except FileNotFoundError:
        raise StorageError(f"{path} is missing") from None
    except OSError as exc:
        raise StorageError(f"cannot read {path}: {exc.strerror}") from None
    except (ValueError, RecursionError) as exc:
        reason = " ".join(str(exc).split())
        raise StorageError(f"{path} is damaged: {reason}") from None
    if not isinstance(value, dict):
        raise StorageError(f"{path} is damaged: not a JSON object")
    return value


def _world_check(world: dict[str, Any]) -> int:
    """CRC32 of the world's canonical JSON: a changed byte in world.json is seen, not obeyed."""
    return zlib.crc32(json.dumps(world, sort_keys=True, allow_nan=False).encode())


def redact_user_data(event: dict[str, Any]) -> dict[str, Any]:
    """The event without the wearer's data in it (what is left after Delete User Data)."""
    data = event.get("data")
    if not isinstance(data, dict) or not any(data.get(k) for k in _USER_DATA_FIELDS):
        return event
    return {**event, "data": {k: (None if k in _USER_DATA_FIELDS else v)
                              for k, v in data.items()}}


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
        path = self.band_dir(serial) / "band.json"
        meta = read_json_object(path)
        fixture_id = meta.get("fixture")
        if meta.get("serial") != serial or not isinstance(fixture_id, str) or (
                not _FIXTURE_ID.match(fixture_id)):
            raise StorageError(f"{path} is damaged: it does not describe band {serial}")
        return load_fixture(fixture_id)

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
        world = self._read_world(path, serial)
        with FlashStorage.open(path / "flash", durable=self.durable, create=False) as storage:
            seen = world.get("flash_seq", 0)
            if storage.sequence < seen:
                raise StorageError(
                    f"flash of band {serial} is older than its world.json (commit "
                    f"{storage.sequence}, the band had reached {seen}): it was rolled back")
            band = self._restore(path, fixture, storage, world)
            yield band
            if save:
                band.settle()
                self._save(path, band)

    @staticmethod
    def _read_world(path: Path, serial: str) -> dict[str, Any]:
        world = read_json_object(path / "world.json")
        time = world.get("time")
        seq = world.get("flash_seq", 0)
        check = world.pop("check", None)
        # Every world written with a flash_seq carries its check (older ones had neither).
        if (check is None and "flash_seq" in world) or (
                check is not None and check != _world_check(world)):
            raise StorageError(f"{path / 'world.json'} is damaged: it fails its checksum")
        if (world.get("serial", serial) != serial or not isinstance(time, int | float)
                or time < 0 or not isinstance(seq, int)):
            raise StorageError(f"{path / 'world.json'} is damaged: it does not describe "
                               f"band {serial}")
        return world

    @staticmethod
    def _restore(path: Path, fixture: Fixture, storage: FlashStorage,
                 world: dict[str, Any]) -> EmulatedBand:
        serial = path.name
        try:
            band = EmulatedBand.restore(fixture, storage, VirtualClock(start=world["time"]),
                                        world)
        except BandError:
            raise
        except (KeyError, ValueError, TypeError) as exc:
            raise StorageError(f"{path / 'world.json'} is damaged: {exc!r}") from None
        identity = band.identity
        if identity.serial != serial or identity.fixture != fixture.id:
            raise StorageError(
                f"band {serial}: its flash belongs to {identity.serial} ({identity.fixture}), "
                f"its band.json says {serial} ({fixture.id})")
        return band

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
        world = {**band.world(), "serial": band.identity.serial,
                 "flash_seq": band.storage.sequence}
        world["check"] = _world_check(world)
        atomic_write(path / "world.json",
                     json.dumps(world, sort_keys=True, allow_nan=False).encode() + b"\n",
                     durable=self.durable if durable is None else durable)
        new_events = [e.to_dict() for e in band.events[saved_events:]]
        wiped = [i for i, e in enumerate(band.events)
                 if e.kind == EventKind.WIPE and e.data.get("phase") == "done"]
        if wiped:
            new_events = [redact_user_data(e) if saved_events + i < wiped[-1] else e
                          for i, e in enumerate(new_events)]
            self._redact_event_log(path / "events.jsonl")
        if new_events:
            with open(path / "events.jsonl", "a", encoding="utf-8") as f:
                for event in new_events:
                    f.write(json.dumps(event, sort_keys=True) + "\n")

    def _redact_event_log(self, path: Path) -> None:
        """Blank the wearer's data in every event logged so far (Delete User Data ran)."""
        if not path.exists():
            return
        lines = []
        for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                lines.append(line)
                continue
            lines.append(json.dumps(redact_user_data(event), sort_keys=True)
                         if isinstance(event, dict) else line)
        atomic_write(path, "".join(f"{line}\n" for line in lines).encode(),
                     durable=self.durable)

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
