"""Migrations create the schema from empty, on both backends, and match the models."""

from __future__ import annotations

import threading
from collections.abc import Callable

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from simulator.nes import DEFAULT_GROUP_POLICY, Nes
from simulator.nes.db import database_url
from simulator.nes.migrate import current_revisions, head_revisions, upgrade
from simulator.nes.models import Base

TABLES = {"alembic_version", "assignments", "audit_events", "bands", "eam_entries",
          "external_authenticators", "fido2_keys", "policies", "users"}


def test_schema_from_empty(make_url: Callable[..., str]) -> None:
    url = make_url(empty=True)
    engine = create_engine(database_url(url))
    try:
        assert set(inspect(engine).get_table_names()) == set()
        with Nes.open(url) as nes:
            assert nes.policy(DEFAULT_GROUP_POLICY).is_active
            assert upgrade(nes.db.migration_engine) is False  # nothing left to do
        assert set(inspect(engine).get_table_names()) == TABLES
        assert current_revisions(engine) == head_revisions() == {"0001_initial"}
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
        assert diff == []
        indexes = {ix["name"]: ix for ix in inspect(engine).get_indexes("assignments")}
        assert indexes["uq_assignments_one_active_per_user"]["unique"]
    finally:
        engine.dispose()


def test_reopening_keeps_data_and_does_not_reseed(make_url: Callable[..., str]) -> None:
    url = make_url(empty=True)
    with Nes.open(url) as nes:
        nes.create_policy("Extra")
    with Nes.open(url) as nes:
        assert len(nes.policies()) == 4
        assert len(nes.audit(table="policies")) == 4


def test_concurrent_first_opens(make_url: Callable[..., str]) -> None:
    url = make_url(empty=True)
    errors: list[BaseException] = []
    start = threading.Barrier(3)

    def open_once() -> None:
        start.wait()
        try:
            Nes.open(url).close()
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=open_once) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    with Nes.open(url) as nes:
        assert len(nes.policies()) == 3
