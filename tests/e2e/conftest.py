"""Shared fixtures of the end-to-end tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from nymi_device.errors import BandUnreachableError
from simulator.pcscd import PcscdHandle, ensure_pcscd


@pytest.fixture(scope="session")
def pcscd() -> Iterator[PcscdHandle]:
    """A pcscd with the vpcd reader for the whole session; stopped only if started here."""
    try:
        handle = ensure_pcscd()
    except BandUnreachableError as exc:
        pytest.skip(f"no PC/SC stack with the vpcd reader: {exc}")
    try:
        yield handle
    finally:
        handle.stop()
