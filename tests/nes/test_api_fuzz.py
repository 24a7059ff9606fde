"""Property-based fuzzing of a few endpoints: whatever JSON arrives, the answer is a JSON error
or success, never a 500."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.nes import Nes, create_app
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import ADMIN, U2, band
from tests.nes.http_client import TestClient

SCALARS = (st.none() | st.booleans() | st.integers(min_value=-(2**70), max_value=2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=40))
JSON = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4)
                    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)
SERIALS = st.sampled_from(["AAAH-00125", "ACAK-00056", "aaah-00125", "", "AAAH-001250"]) | JSON
FIELD_VALUES = {
    "serial": SERIALS, "device_id": st.text(max_size=140) | JSON, "seos_enabled": JSON,
    "secure_nfc": JSON, "nfc_id": JSON, "nba_version": JSON, "label": st.text(max_size=14),
    "expected_band_version": st.integers(min_value=-5, max_value=2**40) | JSON,
    "liveness_configurable": JSON,
}
ENROLL_BODIES = st.fixed_dictionaries({}, optional=FIELD_VALUES) | JSON
KEY_BODIES = st.fixed_dictionaries({}, optional={
    "serial": SERIALS, "rp_id": st.text(max_size=300) | JSON,
    "credential_id": st.text(alphabet="AZaz09-_=+/!", max_size=50) | JSON,
    "public_key_cose": st.text(alphabet="AZaz09-_=+/", max_size=50) | JSON,
    "extra": JSON}) | JSON
POLICY_BODIES = st.fixed_dictionaries({}, optional={
    "settings": st.dictionaries(st.sampled_from([
        "liveness_detection", "nba_idle_logout_min", "enrollment_destination",
        "Allow a user to re-enroll any active Nymi Band", "bogus"]) | st.text(max_size=10),
        JSON, max_size=4) | JSON}) | JSON
FUZZ = settings(max_examples=60, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture])


@pytest.fixture
def client(nes: Nes) -> Iterator[TestClient]:
    nes.enroll(U2, band("AAAH-00125"))
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        yield c


def check(response: Any) -> None:
    assert response.status_code != 500, response.text
    assert response.status_code in (200, 201, 403, 404, 409, 422), response.text
    if response.status_code >= 400:
        body = response.json()
        assert set(body) == {"error", "detail"} and body["error"]


@FUZZ
@given(body=ENROLL_BODIES)
def test_fuzz_enrollment(client: TestClient, body: object) -> None:
    check(client.post("/api/v1/me/enrollments", json=body, auth=(U2, PASSWORD)))


@FUZZ
@given(body=KEY_BODIES)
def test_fuzz_fido2_key(client: TestClient, body: object) -> None:
    check(client.post("/api/v1/me/fido2-keys", json=body, auth=(U2, PASSWORD)))


@FUZZ
@given(body=POLICY_BODIES, raw=st.binary(max_size=40))
def test_fuzz_policy_update(client: TestClient, body: object, raw: bytes) -> None:
    check(client.patch("/api/v1/policies/Liveness Detection Disabled", json=body,
                       auth=(ADMIN, PASSWORD)))
    check(client.post("/api/v1/me/enrollment-checks", content=raw,
                      headers={"Content-Type": "application/json"}, auth=(U2, PASSWORD)))
