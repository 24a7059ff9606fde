"""Server layouts: one NES (the default), or the IT/OT layout with an Enrollment NES and a
Registration NES (DOMAIN.md 2.6), each with its own database and records.

A site lives in ``<fleet>/nes/``::

    nes/site.json          the layout and each server's database
    nes/directory.json     the shared directory (users, passwords, groups)
    nes/<name>.db          each server's SQLite database (unless its URL points elsewhere)

``site.json`` names a database inside the site relative to the site, so a copied or moved site
uses its own files (older releases recorded absolute paths: a recorded ``…/nes/<name>.db`` is
read as the site's own ``<name>.db``). A database the site records but that is gone is refused:
opening never recreates it empty.

Administrator actions apply to the server they are called on; in the IT/OT layout an
administrator repeats them on both (DOMAIN 2.6: "Admins repeat suspend/disconnect/primary
changes on both NES").
"""

from __future__ import annotations

import enum
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from nymi_device.protocol.nes.errors import NesInvalidInput, NesStorageError, NotFound
from simulator.nes.config import NesConfig
from simulator.nes.db import database_url
from simulator.nes.directory import Directory
from simulator.nes.service import Nes

SITE_DIR = "nes"
SITE_FILE = "site.json"
DIRECTORY_FILE = "directory.json"
DEFAULT_NES = "nes"
"""The single server's name: the documented default service mapping name (DOMAIN 8.1)."""
ENROLLMENT_NES = "enrollment"
REGISTRATION_NES = "registration"


class Layout(enum.StrEnum):
    SINGLE = "single"
    IT_OT = "it-ot"

    @property
    def server_names(self) -> tuple[str, ...]:
        if self is Layout.SINGLE:
            return (DEFAULT_NES,)
        return (ENROLLMENT_NES, REGISTRATION_NES)


@dataclass
class Site:
    """The NES servers of one site, opened, with their shared directory."""

    layout: Layout
    directory: Directory
    servers: dict[str, Nes] = field(default_factory=dict)
    root: Path | None = None

    def server(self, name: str | None = None) -> Nes:
        """The server named ``name``; without a name, the single NES or the Enrollment NES."""
        if name is None:
            name = self.layout.server_names[0]
        try:
            return self.servers[name]
        except KeyError:
            known = ", ".join(self.servers)
            raise NotFound(f"no NES named {name!r} in this {self.layout.value} site "
                           f"(servers: {known})", "nes", name) from None

    @property
    def enrollment(self) -> Nes:
        """Where enrollment happens: the Enrollment NES, or the single NES."""
        return self.server(self.layout.server_names[0])

    @property
    def registration(self) -> Nes | None:
        """The Registration NES of the IT/OT layout (None in the single layout)."""
        return self.servers.get(REGISTRATION_NES)

    def __iter__(self) -> Iterator[Nes]:
        return iter(self.servers.values())

    def close(self) -> None:
        for nes in self.servers.values():
            nes.close()

    def __enter__(self) -> Site:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _read_site(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise NesStorageError(f"{path} cannot be read as a site description ({exc}); "
                              "restore it from a backup") from None
    if not isinstance(data, dict) or not isinstance(data.get("servers", {}), dict):
        raise NesStorageError(f"{path} is not a site description; restore it from a backup")
    return data


def _recorded(site_dir: Path, target: str) -> str:
    """What ``site.json`` records for ``target``: a file inside the site relative to it."""
    if "://" in target:
        return target
    path = Path(target).absolute()
    try:
        return path.relative_to(site_dir.absolute()).as_posix()
    except ValueError:
        return str(path)


def _resolved(site_dir: Path, name: str, recorded: str) -> str | Path:
    """The database a recorded target names, for this site wherever it now lives."""
    if "://" in recorded:
        return recorded
    path = Path(recorded)
    if not path.is_absolute():
        return site_dir / path
    if path.name == f"{name}.db" and path.parent.name == SITE_DIR:
        return site_dir / path.name  # the default of an older release, absolute then
    return path


def _sqlite_file(target: str | Path) -> Path | None:
    if isinstance(target, Path):
        return target
    url = database_url(target)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def _stored_layout(site_file: Path, data: dict[str, Any]) -> Layout:
    try:
        return Layout(data.get("layout", Layout.SINGLE.value))
    except ValueError:
        raise NesStorageError(f"{site_file} names an unknown layout "
                              f"{data.get('layout')!r}") from None


def _existing_targets(site_file: Path, layout: Layout,
                      data: dict[str, Any]) -> dict[str, str | Path]:
    """Each server's database as ``site.json`` records it; every recorded SQLite file must
    still be there."""
    site_dir = site_file.parent
    recorded = {str(k): str(v) for k, v in data.get("servers", {}).items()}
    targets: dict[str, str | Path] = {}
    for name in layout.server_names:
        if name not in recorded:
            raise NesStorageError(f"{site_file} records no database for the server {name!r}; "
                                  "restore it from a backup")
        targets[name] = _resolved(site_dir, name, recorded[name])
        file = _sqlite_file(targets[name])
        if file is not None and not file.is_file():
            raise NesStorageError(
                f"the database of the NES {name!r} ({file}) is missing although {site_file} "
                "records it; restore it from a backup (it is not recreated empty)")
    return targets


def _write_site(site_file: Path, layout: Layout, targets: Mapping[str, str]) -> None:
    tmp = site_file.with_name(f".{SITE_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"layout": layout.value, "servers": dict(targets)}, indent=2))
    os.replace(tmp, site_file)


def open_site(root: Path, *, layout: Layout | str | None = None,
              urls: Mapping[str, str] | None = None, config: NesConfig | None = None,
              directory: Directory | None = None) -> Site:
    """Open the site in ``root/nes`` (``root`` is the fleet directory), creating it if needed.

    :param layout: required the first time only (default: single); an existing site keeps its
        layout, and naming a different one is an error.
    :param urls: database per server name (a ``postgresql://`` URL or an SQLite path); servers
        not named get ``root/nes/<name>.db``. Recorded in ``site.json`` on creation (a file
        inside the site relative to it), once every database opened.
    """
    site_dir = root / SITE_DIR
    site_file = site_dir / SITE_FILE
    wanted = None if layout is None else Layout(layout)
    created = not site_file.is_file()
    if not created:
        data = _read_site(site_file)
        chosen = _stored_layout(site_file, data)
        if wanted is not None and wanted is not chosen:
            raise NesInvalidInput(f"the site in {site_dir} uses the {chosen.value} layout, "
                                  f"not {wanted.value}")
        targets = _existing_targets(site_file, chosen, data)
        targets.update(urls or {})
    else:
        chosen = wanted or Layout.SINGLE
        unknown = set(urls or {}) - set(chosen.server_names)
        if unknown:
            raise NesInvalidInput(f"the {chosen.value} layout has no server {sorted(unknown)}")
        targets = {name: (urls or {}).get(name, site_dir / f"{name}.db")
                   for name in chosen.server_names}
        site_dir.mkdir(parents=True, exist_ok=True)
    directory = directory or Directory(site_dir / DIRECTORY_FILE)
    site = Site(layout=chosen, directory=directory, root=root)
    try:
        for name in chosen.server_names:
            target = targets[name]
            site.servers[name] = Nes.open(target if isinstance(target, Path) or "://" in target
                                          else Path(target),
                                          name=name, config=config, directory=directory)
        if created:
            _write_site(site_file, chosen,
                        {name: _recorded(site_dir, str(t)) for name, t in targets.items()})
    except BaseException:
        site.close()
        raise
    return site


def memory_site(layout: Layout | str = Layout.SINGLE, *, config: NesConfig | None = None,
                directory: Directory | None = None) -> Site:
    """A site whose servers live in memory (SQLite), for tests and quick experiments."""
    chosen = Layout(layout)
    directory = directory or Directory()
    site = Site(layout=chosen, directory=directory)
    for name in chosen.server_names:
        site.servers[name] = Nes.open("sqlite://", name=name, config=config, directory=directory)
    return site
