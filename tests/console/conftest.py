"""Fixtures of the console tests: the NES fixtures of ``tests/nes`` (SQLite and PostgreSQL)."""

from tests.nes.conftest import (  # noqa: F401 - pytest finds fixtures by name
    backend,
    directory,
    make_url,
    nes,
    open_nes,
    postgresql_proc,
    sqlite_template,
)
