"""A simulated site per test (bands, directory users, embedded NES)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.hosttools.diagnose.situations import Site


@pytest.fixture
def site(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Site:
    return Site(tmp_path / "site", capsys)
