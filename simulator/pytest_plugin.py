"""pytest fixtures for projects that test against simulated bands.

Installed as a ``pytest11`` plugin: ``nymi_fleet`` is an empty fleet directory in ``tmp_path``;
``nymi_band`` is a Band 3.0 (``AAAH-00125``) in it, ready to be worn.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from simulator.fleet import Fleet


@pytest.fixture
def nymi_fleet(tmp_path: Path) -> Fleet:
    return Fleet(tmp_path / "nymi-sim", durable=False)


@pytest.fixture
def nymi_band(nymi_fleet: Fleet) -> str:
    """The serial of a fresh ``nymi-band-3.0`` band in :func:`nymi_fleet`."""
    nymi_fleet.add_band("nymi-band-3.0", "AAAH-00125")
    return "AAAH-00125"
