"""Engines, sessions and transactions of one NES database.

SQLite (a file by default) and PostgreSQL (by URL) behave the same to the service layer:

- SQLite: foreign keys on, WAL journal, a busy timeout; the driver's own transaction handling is
  switched off and every transaction is begun explicitly, ``BEGIN IMMEDIATE`` for writes (so two
  writers serialize on the database lock instead of failing at commit) and ``BEGIN`` for reads.
- PostgreSQL (psycopg 3): writes run at ``SERIALIZABLE``; a serialization failure, a deadlock or
  a unique violation caused by a concurrent writer rolls the transaction back and runs the whole
  operation again, so the loser of a race sees the winner's result and gets the refusal a
  sequential caller would get.

Each operation is a function of a :class:`~sqlalchemy.orm.Session` run by :meth:`Database.write`
or :meth:`Database.read` in ONE transaction. Migrations (Alembic) are applied when the database
is opened.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event, make_url
from sqlalchemy.engine import URL, Connection
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from nymi_device.protocol.nes.errors import NesConflict, NesInvalidInput
from simulator.nes import audit

logger = logging.getLogger(__name__)
T = TypeVar("T")

_WRITE = "nes_write"
_RETRY_SQLSTATES = {"40001", "40P01", "23505"}
"""serialization_failure, deadlock_detected, unique_violation (a concurrent insert won)."""


class NesSession(Session):
    """A session whose flushes are audited (:mod:`simulator.nes.audit`)."""


audit.install(NesSession)


def database_url(target: str | Path) -> URL:
    """The SQLAlchemy URL for a path (an SQLite file) or a database URL.

    ``postgresql://`` and ``postgres://`` URLs use the psycopg 3 driver.
    """
    if isinstance(target, Path) or "://" not in str(target):
        return URL.create("sqlite+pysqlite", database=str(Path(target)))
    url = make_url(str(target))
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise NesInvalidInput(f"unsupported NES database {url.get_backend_name()!r}: "
                              "use an SQLite file or a postgresql:// URL")
    return url


class Database:
    """One NES database: an engine, its write variant and the transaction runner."""

    def __init__(self, target: str | Path, *, busy_timeout_s: float = 30.0,
                 write_attempts: int = 8, echo: bool = False) -> None:
        self.url = database_url(target)
        self.backend = self.url.get_backend_name()
        self.write_attempts = max(1, write_attempts)
        if self.backend == "sqlite":
            self.engine = self._sqlite_engine(busy_timeout_s, echo)
            self._write_engine = self.engine.execution_options(**{_WRITE: True})
        else:
            self.engine = create_engine(self.url, echo=echo, pool_pre_ping=True)
            self._write_engine = self.engine.execution_options(isolation_level="SERIALIZABLE")
        self._sessions = sessionmaker(class_=NesSession, expire_on_commit=False,
                                      autoflush=True)

    def _sqlite_engine(self, busy_timeout_s: float, echo: bool) -> Engine:
        database = self.url.database or ""
        memory = database in ("", ":memory:")
        if not memory:
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            self.url, echo=echo,
            connect_args={"timeout": busy_timeout_s, "check_same_thread": False},
            **({"poolclass": StaticPool} if memory else {}),
        )

        @event.listens_for(engine, "connect")
        def _connect(dbapi_connection: Any, record: object) -> None:
            # Take transaction control away from the sqlite3 module: we begin explicitly below.
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _begin(conn: Connection) -> None:
            write = conn.get_execution_options().get(_WRITE, False)
            conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

        return engine

    @property
    def migration_engine(self) -> Engine:
        """The engine migrations run on: SQLite's write engine (``BEGIN IMMEDIATE``); on
        PostgreSQL the default READ COMMITTED engine, so a migration that waited for another
        one's advisory lock sees what that one committed."""
        return self._write_engine if self.backend == "sqlite" else self.engine

    @property
    def write_engine(self) -> Engine:
        """The engine whose transactions take the write lock (SQLite) / are serializable."""
        return self._write_engine

    def write(self, operation: Callable[[Session], T], *, actor: str = "system",
              now: Callable[[], datetime] | None = None) -> T:
        """Run ``operation`` in one write transaction and commit; retry it on a lost race."""
        clock = now or (lambda: datetime.now(UTC))
        for attempt in range(1, self.write_attempts + 1):
            session = self._sessions(bind=self._write_engine)
            session.info.update(actor=actor, now=clock())
            try:
                with session.begin():
                    return operation(session)
            except DBAPIError as exc:
                if not self._retryable(exc) or attempt == self.write_attempts:
                    if isinstance(exc, IntegrityError):
                        raise NesConflict(
                            "the change conflicts with another change made at the same time; "
                            "look at the present state and try again") from exc
                    raise
                logger.info("write transaction lost a race (attempt %d): %s", attempt,
                            getattr(exc.orig, "sqlstate", type(exc.orig).__name__))
                time.sleep(random.uniform(0.0, 0.005 * attempt))
            finally:
                session.close()
        raise AssertionError("unreachable")  # pragma: no cover

    def read(self, operation: Callable[[Session], T]) -> T:
        """Run ``operation`` in one read transaction (rolled back at the end)."""
        with self._sessions(bind=self.engine) as session, session.begin():
            return operation(session)

    def _retryable(self, exc: DBAPIError) -> bool:
        if self.backend == "postgresql":
            return getattr(exc.orig, "sqlstate", None) in _RETRY_SQLSTATES
        # SQLite: a writer that timed out waiting for the lock may try again.
        return "database is locked" in str(exc.orig)

    def dispose(self) -> None:
        self.engine.dispose()
