"""Alembic environment of the NES database, applied in code by :func:`simulator.nes.migrate`."""
