"""Alembic environment: runs on the connection :func:`simulator.nes.migrate.upgrade` passes in.

There is no ``alembic.ini``: the configuration is built in code, so migrations work the same from
a source tree and from an installed package.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from simulator.nes.models import Base

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError("NES migrations run through simulator.nes.migrate.upgrade(), "
                       "which passes the connection in")

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=connection.dialect.name == "sqlite",
    compare_type=True,
)
with context.begin_transaction():
    context.run_migrations()
