"""Server layouts: one NES (the default), or the IT/OT layout with an Enrollment NES and a
Registration NES (DOMAIN.md 2.6), each with its own database and records.

A site lives in ``<fleet>/nes/``::

    nes/site.json          the layout and each server's database
    nes/directory.json     the shared directory (users, passwords, groups)
    nes/<name>.db          each server's SQLite database (unless its URL points elsewhere)

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

from simulator.nes.config import NesConfig
from simulator.nes.directory import Directory
from simulator.nes.errors import NesInvalidInput, NotFound
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
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise NesInvalidInput(f"{path} is not a site description")
    return data


def open_site(root: Path, *, layout: Layout | str | None = None,
              urls: Mapping[str, str] | None = None, config: NesConfig | None = None,
              directory: Directory | None = None) -> Site:
    """Open the site in ``root/nes`` (``root`` is the fleet directory), creating it if needed.

    :param layout: required the first time only (default: single); an existing site keeps its
        layout, and naming a different one is an error.
    :param urls: database per server name (a ``postgresql://`` URL or an SQLite path); servers
        not named get ``root/nes/<name>.db``. Recorded in ``site.json`` on creation.
    """
    site_dir = root / SITE_DIR
    site_file = site_dir / SITE_FILE
    wanted = None if layout is None else Layout(layout)
    if site_file.is_file():
        data = _read_site(site_file)
        stored = Layout(data.get("layout", Layout.SINGLE.value))
        if wanted is not None and wanted is not stored:
            raise NesInvalidInput(f"the site in {site_dir} uses the {stored.value} layout, "
                                  f"not {wanted.value}")
        targets: dict[str, str] = {str(k): str(v) for k, v in data.get("servers", {}).items()}
        targets.update(urls or {})
        chosen = stored
    else:
        chosen = wanted or Layout.SINGLE
        targets = {name: str((urls or {}).get(name, site_dir / f"{name}.db"))
                   for name in chosen.server_names}
        unknown = set(urls or {}) - set(chosen.server_names)
        if unknown:
            raise NesInvalidInput(f"the {chosen.value} layout has no server {sorted(unknown)}")
        site_dir.mkdir(parents=True, exist_ok=True)
        tmp = site_file.with_name(f".{SITE_FILE}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps({"layout": chosen.value, "servers": targets}, indent=2))
        os.replace(tmp, site_file)
    directory = directory or Directory(site_dir / DIRECTORY_FILE)
    site = Site(layout=chosen, directory=directory, root=root)
    try:
        for name in chosen.server_names:
            target = targets[name]
            site.servers[name] = Nes.open(target if "://" in target else Path(target),
                                          name=name, config=config, directory=directory)
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
