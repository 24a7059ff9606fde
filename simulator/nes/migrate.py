"""Apply the NES schema migrations (Alembic) in code.

:func:`upgrade` brings a database to the newest revision. It is cheap when there is nothing to
do (one query), and safe when several processes open the same new database at once: SQLite
serializes them on ``BEGIN IMMEDIATE``, PostgreSQL on a transaction-level advisory lock.
"""

from __future__ import annotations

import functools
import time
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import OperationalError

SCRIPT_LOCATION = Path(__file__).resolve().parent / "migrations"
_ADVISORY_LOCK = 0x4E4553  # "NES"


def alembic_config() -> Config:
    """An Alembic configuration for the NES migrations, built without an ``alembic.ini``."""
    config = Config()
    config.set_main_option("script_location", str(SCRIPT_LOCATION))
    return config


@functools.cache
def head_revisions() -> frozenset[str]:
    return frozenset(ScriptDirectory.from_config(alembic_config()).get_heads())


def current_revisions(engine: Engine) -> frozenset[str]:
    with engine.connect() as conn:
        return frozenset(MigrationContext.configure(conn).get_current_heads())


def upgrade(engine: Engine, *, attempts: int = 20) -> bool:
    """Migrate the database behind ``engine`` (:attr:`Database.migration_engine`) to the newest
    revision.

    Returns True when revisions were applied. SQLite cannot upgrade a reader's lock to a writer's
    while another connection migrates ("database is locked", which its busy timeout does not
    cover); the migration is idempotent, so it is simply tried again.
    """
    for attempt in range(1, attempts + 1):
        try:
            return _upgrade_once(engine)
        except OperationalError as exc:
            if engine.dialect.name != "sqlite" or "locked" not in str(exc) or attempt == attempts:
                raise
            time.sleep(0.02 * attempt)
    raise AssertionError("unreachable")


def _upgrade_once(engine: Engine) -> bool:
    with engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK})")
        current = frozenset(MigrationContext.configure(conn).get_current_heads())
        if current == head_revisions():
            return False
        config = alembic_config()
        config.attributes["connection"] = conn
        command.upgrade(config, "head")
        return True
