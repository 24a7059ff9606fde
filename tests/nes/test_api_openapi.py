"""The OpenAPI document says what the API answers: every error status a call can give, with the
body it really has; out-of-range numbers are 422, not 500; 405 lists every allowed method."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulator.nes import Nes, create_app
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import ADMIN, U2
from tests.nes.http_client import TestClient

PUBLIC = {("get", "/api/v1/health"), ("post", "/api/v1/login")}


@pytest.fixture
def client(nes: Nes) -> Iterator[TestClient]:
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        yield c


@pytest.fixture
def spec(client: TestClient) -> dict[str, Any]:
    result: dict[str, Any] = client.get("/openapi.json").json()
    return result


def _operations(spec: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            yield method, path, operation


@pytest.mark.parametrize("offset", ["9223372036854775808", "9223372036854775807", "1e3", "-1"])
def test_out_of_range_offset_is_422(client: TestClient, offset: str) -> None:
    r = client.get("/api/v1/users", params={"offset": offset}, auth=(ADMIN, PASSWORD))
    assert r.status_code == 422, r.text
    assert "offset" in r.json()["error"]


def test_largest_offset_accepted_answers(client: TestClient) -> None:
    r = client.get("/api/v1/users", params={"offset": 2**31 - 1}, auth=(ADMIN, PASSWORD))
    assert r.status_code == 200 and r.json() == []


def test_every_protected_call_declares_its_errors(spec: dict[str, Any]) -> None:
    for method, path, operation in _operations(spec):
        codes = set(operation["responses"])
        if (method, path) in PUBLIC:
            continue
        assert "401" in codes, (method, path, codes)
        if path == "/api/v1/logout":  # ends the caller's own token: nothing to refuse
            continue
        assert "403" in codes, (method, path, codes)
        if "{" in path:
            assert "404" in codes, (method, path, codes)
        if method in ("post", "put", "patch", "delete"):
            assert "409" in codes, (method, path, codes)


def test_error_bodies_are_declared_as_they_are_sent(spec: dict[str, Any]) -> None:
    schemas = spec["components"]["schemas"]
    assert "HTTPValidationError" not in schemas
    body = schemas["ErrorBody"]
    assert set(body["properties"]) == {"error", "detail"} and body["required"] == ["error"]
    for method, path, operation in _operations(spec):
        for code, response in operation["responses"].items():
            if code.startswith(("4", "5")):
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref == "#/components/schemas/ErrorBody", (method, path, code)


def test_405_lists_every_allowed_method(client: TestClient) -> None:
    r = client.delete("/api/v1/me", auth=(U2, PASSWORD))
    assert r.status_code == 405
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "PUT"}
    assert set(r.json()) == {"error", "detail"}
    r = client.put("/api/v1/me/fido2-keys", auth=(U2, PASSWORD))
    assert {m.strip() for m in r.headers["Allow"].split(",")} >= {"GET", "POST"}
    r = client.get("/api/v1/policies/Default Settings Set/activate", auth=(ADMIN, PASSWORD))
    assert r.status_code == 405 and r.headers["Allow"] == "POST"
