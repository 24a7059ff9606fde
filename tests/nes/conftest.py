"""Fixtures for the NES tests: every test that asks for ``nes`` (or ``make_url``) runs twice, on
an embedded SQLite database and on a throwaway PostgreSQL server.

PostgreSQL: one server per session, started from Debian's binaries
(``/usr/lib/postgresql/15/bin``, or ``$NYMI_PG_BIN``) by pytest-postgresql's ``postgresql_proc``
factory. A template database is migrated once; each test gets fresh databases cloned from it
(``CREATE DATABASE … TEMPLATE``) and dropped afterwards. As root, ``pg_ctl`` is reached through
``pg_as_postgres.py``, which runs it as the ``postgres`` system user in a data directory that
user owns. Without the binaries the PostgreSQL half is skipped with the reason.

SQLite: a template file is migrated once per session and copied for each database.
"""

from __future__ import annotations

import atexit
import os
import pwd
import shutil
import stat
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_postgresql import factories
from pytest_postgresql.executor import PostgreSQLExecutor
from pytest_postgresql.janitor import DatabaseJanitor

from simulator.nes import ADMIN_GROUP, Directory, Nes, NesConfig

PG_BIN = Path(os.environ.get("NYMI_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_CTL = PG_BIN / "pg_ctl"
TEMPLATE_DB = "nes_template"
PASSWORD = "Passw0rd!"
"""Every directory user's password in these tests."""


def _pg_ctl_executable() -> str:
    """``pg_ctl`` itself, or (as root) a wrapper that runs it as the ``postgres`` user."""
    if os.geteuid() != 0 or not PG_CTL.exists():
        return str(PG_CTL)
    pg = pwd.getpwnam("postgres")
    base = Path(tempfile.mkdtemp(prefix="nymi-nes-pg-"))
    os.chown(base, pg.pw_uid, pg.pw_gid)
    atexit.register(shutil.rmtree, base, True)
    wrapper = base / "pg_ctl"
    script = Path(__file__).with_name("pg_as_postgres.py")
    wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "{PG_CTL}" "{base}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return str(wrapper)


def _pg_url(host: str, port: int | str, user: str, dbname: str, password: str | None) -> str:
    auth = f"{user}:{password}" if password else user
    return f"postgresql+psycopg://{auth}@{host}:{port}/{dbname}"


def _migrate_template(host: str, port: int, user: str, dbname: str, password: str | None,
                      **_: Any) -> None:
    Nes.open(_pg_url(host, port, user, dbname, password)).close()


postgresql_proc = factories.postgresql_proc(
    executable=_pg_ctl_executable(), port=None, dbname=TEMPLATE_DB,
    # A throwaway server: durability is not needed, speed is.
    postgres_options="-c fsync=off -c synchronous_commit=off -c full_page_writes=off",
    load=[_migrate_template])


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("nes-template") / "template.db"
    Nes.open(path).close()
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql" and not PG_CTL.exists():
        pytest.skip(f"PostgreSQL binaries not found at {PG_BIN} (run scripts/setup.sh)")
    return str(request.param)


@pytest.fixture
def make_url(backend: str, request: pytest.FixtureRequest, tmp_path: Path
             ) -> Iterator[Callable[..., str]]:
    """A factory of fresh, empty-of-data NES databases: ``make_url()`` (migrated, from the
    template) or ``make_url(empty=True)`` (no schema at all)."""
    cleanups: list[Callable[[], None]] = []

    if backend == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")

        def make(*, empty: bool = False) -> str:
            path = tmp_path / f"nes-{uuid.uuid4().hex[:8]}.db"
            if not empty:
                shutil.copyfile(template, path)
            return f"sqlite+pysqlite:///{path}"
    else:
        proc: PostgreSQLExecutor = request.getfixturevalue("postgresql_proc")

        def make(*, empty: bool = False) -> str:
            name = f"nes_{uuid.uuid4().hex[:12]}"
            janitor = DatabaseJanitor(user=proc.user, host=proc.host, port=proc.port,
                                      dbname=name, version=proc.version, password=proc.password)
            with janitor.cursor() as cur:
                # FILE_COPY clones a small template faster than the default WAL_LOG strategy.
                template = "template0" if empty else proc.template_dbname
                cur.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
            cleanups.append(janitor.drop)
            return _pg_url(proc.host, proc.port, proc.user, name, proc.password)

    yield make
    for cleanup in reversed(cleanups):
        cleanup()


@pytest.fixture
def directory() -> Directory:
    """Users of the examples in DOMAIN.md, an administrator and a plain user."""
    d = Directory(scrypt_n=2**8)
    d.add_user("CORP\\tw-user2", PASSWORD, first_name="TW", last_name="User2")
    d.add_user("CORP\\tw-user1", PASSWORD, first_name="TW", last_name="User1")
    d.add_user("CORP\\tw-user3", PASSWORD, first_name="TW", last_name="User3")
    d.add_user("CORP\\admin", PASSWORD, first_name="Ada", last_name="Admin",
               groups=[ADMIN_GROUP])
    return d


@pytest.fixture
def open_nes(make_url: Callable[..., str], directory: Directory) -> Iterator[Callable[..., Nes]]:
    """Open a fresh NES: ``open_nes(name="nes", config=NesConfig(...))``; with ``empty=True``
    the database starts without a schema (migrated and seeded by the opening itself)."""
    opened: list[Nes] = []

    def opener(*, name: str = "nes", config: NesConfig | None = None,
               empty: bool = False) -> Nes:
        nes = Nes.open(make_url(empty=empty), name=name, config=config, directory=directory)
        opened.append(nes)
        return nes

    yield opener
    for nes in opened:
        nes.close()


@pytest.fixture
def nes(open_nes: Callable[..., Nes]) -> Nes:
    return open_nes()
