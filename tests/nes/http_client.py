"""Starlette's TestClient, imported without its notice that a future release moves to a
different HTTP client package (it works unchanged with the installed httpx)."""

from __future__ import annotations

import warnings

with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message=".*httpx.*", category=UserWarning)
    from fastapi.testclient import TestClient

__all__ = ["TestClient"]
