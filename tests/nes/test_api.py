"""The HTTP API: each role's allowed and refused calls, errors as JSON, 422 for malformed
input, never a 500 from a bad request."""

from __future__ import annotations

import base64
from collections.abc import Iterator

import pytest

from simulator.nes import OTHER_USER_MESSAGE, Directory, Nes, create_app, memory_site
from simulator.nes.api import create_site_app
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import ADMIN, U1, U2, band, self_service
from tests.nes.http_client import TestClient

ADMIN_AUTH = (ADMIN, PASSWORD)
U1_AUTH = (U1, PASSWORD)
U2_AUTH = (U2, PASSWORD)


@pytest.fixture
def client(nes: Nes) -> Iterator[TestClient]:
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        yield c


def enroll_body(serial: str, **extra: object) -> dict[str, object]:
    return {"serial": serial, "device_id": f"dev-{serial.lower()}", **extra}


def assert_error(response, status: int) -> dict[str, object]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error", "detail"} and isinstance(body["error"], str)
    return body


ADMIN_CALLS = [
    ("GET", "/api/v1/users", None),
    ("POST", "/api/v1/users", {"account": U2}),
    ("GET", "/api/v1/users/tw-user2", None),
    ("PUT", "/api/v1/users/tw-user2/individual-policy", {"policy": None}),
    ("GET", "/api/v1/bands", None),
    ("GET", "/api/v1/bands/AAAH-00125", None),
    ("PATCH", "/api/v1/bands/AAAH-00125", {"notes": "x"}),
    ("POST", "/api/v1/bands/AAAH-00125/suspend", None),
    ("POST", "/api/v1/bands/AAAH-00125/disconnect", None),
    ("POST", "/api/v1/bands/AAAH-00125/replace", None),
    ("POST", "/api/v1/bands/AAAH-00125/temporary", None),
    ("POST", "/api/v1/bands/AAAH-00125/restore", None),
    ("POST", "/api/v1/bands/AAAH-00125/reassign", {"to": U1}),
    ("GET", "/api/v1/policies", None),
    ("POST", "/api/v1/policies", {"name": "P"}),
    ("GET", "/api/v1/policies/Default Settings Set", None),
    ("PATCH", "/api/v1/policies/Default Settings Set", {"settings": {"haptic_feedback": False}}),
    ("POST", "/api/v1/policies/Default Settings Set/activate", None),
    ("DELETE", "/api/v1/policies/Liveness Detection Disabled", None),
    ("GET", "/api/v1/policy-status", None),
    ("GET", "/api/v1/audit", None),
    ("GET", "/api/v1/users/tw-user2/eam-entries", None),
    ("GET", "/api/v1/users/tw-user2/fido2-keys", None),
    ("POST", "/api/v1/eam-entries/1/blacklist", None),
    ("DELETE", "/api/v1/eam-entries/1", None),
    ("DELETE", "/api/v1/fido2-keys/AAAA", None),
]
USER_CALLS = [
    ("GET", "/api/v1/me", None),
    ("GET", "/api/v1/me/policy", None),
    ("POST", "/api/v1/me/enrollment-checks", {"serial": "AAAH-00125"}),
    ("POST", "/api/v1/me/enrollments", enroll_body("AAAH-00125")),
    ("POST", "/api/v1/me/registrations", enroll_body("AAAH-00125")),
    ("POST", "/api/v1/me/sign-ins", {"serial": "AAAH-00125"}),
    ("GET", "/api/v1/me/fido2-keys", None),
    ("POST", "/api/v1/me/fido2-keys", {"serial": "AAAH-00125", "rp_id": "example.com",
                                       "credential_id": "AAAA", "public_key_cose": "pQE"}),
    ("POST", "/api/v1/logout", None),
]


def test_unauthenticated_calls_get_401(client: TestClient) -> None:
    for method, path, body in ADMIN_CALLS + USER_CALLS:
        response = client.request(method, path, json=body)
        assert response.status_code == 401, (method, path, response.text)
        assert_error(response, 401)
        assert "Basic" in response.headers["www-authenticate"], (method, path)


def test_users_get_403_on_administrator_calls(client: TestClient) -> None:
    for method, path, body in ADMIN_CALLS:
        response = client.request(method, path, json=body, auth=U2_AUTH)
        assert response.status_code == 403, (method, path, response.text)
        assert assert_error(response, 403)["error"] == (
            'only members of "NES Administrators" may make this call')


def test_administrators_reach_every_administrator_call(client: TestClient, nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    for method, path, body in ADMIN_CALLS:
        response = client.request(method, path, json=body, auth=ADMIN_AUTH)
        assert response.status_code in (200, 201, 204, 404, 409), (method, path, response.text)


def test_users_reach_every_nba_call(client: TestClient) -> None:
    for method, path, body in USER_CALLS:
        response = client.request(method, path, json=body, auth=U2_AUTH)
        if response.status_code == 403:  # answered by the NES rules, not the role check
            assert response.json()["detail"]["type"] == "NesRefusal", (method, path)
        else:
            assert response.status_code in (200, 201), (method, path, response.text)


def test_bad_credentials(client: TestClient) -> None:
    assert_error(client.get("/api/v1/me", auth=(U2, "wrong")), 401)
    assert_error(client.get("/api/v1/me", auth=("CORP\\ghost", PASSWORD)), 401)
    garbled = {"Authorization": "Basic !!!not-base64"}
    assert_error(client.get("/api/v1/me", headers=garbled), 401)
    assert_error(client.get("/api/v1/me", headers={"Authorization": "Bearer nope"}), 401)
    assert_error(client.post("/api/v1/login", json={"username": U2, "password": "x"}), 401)


def test_bearer_tokens(nes: Nes) -> None:
    with TestClient(create_app(nes)) as c:
        login = c.post("/api/v1/login", json={"username": "tw-user2", "password": PASSWORD})
        assert login.status_code == 200
        token = login.json()["access_token"]
        assert login.json()["account"] == U2 and login.json()["is_admin"] is False
        headers = {"Authorization": f"Bearer {token}"}
        assert c.get("/api/v1/me", headers=headers).json()["directory"]["account"] == U2
        assert c.get("/api/v1/users", headers=headers).status_code == 403
        assert c.post("/api/v1/logout", headers=headers).json()["signed_out"] is True
        assert c.get("/api/v1/me", headers=headers).status_code == 401
    with TestClient(create_app(nes, token_idle_seconds=0)) as c:
        token = c.post("/api/v1/login",
                       json={"username": ADMIN, "password": PASSWORD}).json()["access_token"]
        assert c.get("/api/v1/users", headers={"Authorization": f"Bearer {token}"}
                     ).status_code == 401


def test_nba_enrollment_and_domain_3_4_example_over_http(client: TestClient, nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    assert client.post("/api/v1/me/enrollments", json=enroll_body("ACAK-00056"),
                       auth=U1_AUTH).status_code == 201
    first = client.post("/api/v1/me/enrollments", json=enroll_body("AAAH-00125"), auth=U2_AUTH)
    assert first.status_code == 201 and first.json()["action"] == "enroll"
    check = client.post("/api/v1/me/enrollment-checks", json={"serial": "ACAK-00056"},
                        auth=U2_AUTH).json()
    assert check["allowed"] and check["previous_owner"] == U1
    moved = client.post("/api/v1/me/enrollments", auth=U2_AUTH, json=enroll_body(
        "ACAK-00056", expected_band_version=check["band_version"]))
    assert moved.status_code == 201
    bands = [(b["serial"], b["is_active"], b["is_primary"]) for b in moved.json()["user"]["bands"]]
    assert bands == [("AAAH-00125", False, True), ("ACAK-00056", True, False)]
    shown = client.get("/api/v1/users/CORP%5Ctw-user2", auth=ADMIN_AUTH).json()
    assert {"serial", "is_active", "is_primary", "notes", "created"} <= set(shown["bands"][0])
    assert client.get("/api/v1/users/tw-user1", auth=ADMIN_AUTH).json()["bands"] == []


def test_refusals_carry_the_exact_message(client: TestClient, nes: Nes) -> None:
    client.post("/api/v1/me/enrollments", json=enroll_body("ACAK-00056"), auth=U1_AUTH)
    refused = client.post("/api/v1/me/enrollments", json=enroll_body("ACAK-00056"), auth=U2_AUTH)
    body = assert_error(refused, 403)
    assert body["error"] == OTHER_USER_MESSAGE
    assert body["detail"]["code"] == "band-of-another-user"
    again = client.post("/api/v1/me/enrollments", json=enroll_body("ACAK-00056"), auth=U1_AUTH)
    assert assert_error(again, 403)["error"] == (
        "A Nymi Band has been assigned to CORP\\tw-user1, however it cannot be found.")


def test_users_act_only_on_their_own_bands(client: TestClient, nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    nes.enroll(U2, band("AAAH-00125"))
    assert_error(client.post("/api/v1/me/sign-ins", json={"serial": "ACAK-00056"},
                             auth=U2_AUTH), 403)
    key = {"serial": "ACAK-00056", "rp_id": "example.com", "credential_id": "AAAA",
           "public_key_cose": "pQE"}
    assert_error(client.post("/api/v1/me/fido2-keys", json=key, auth=U2_AUTH), 403)
    key["serial"] = "AAAH-00125"
    made = client.post("/api/v1/me/fido2-keys", json=key, auth=U2_AUTH)
    assert made.status_code == 201 and made.json()["account"] == U2
    assert [k["serial"] for k in client.get("/api/v1/me/fido2-keys", auth=U2_AUTH).json()] == [
        "AAAH-00125"]
    assert client.get("/api/v1/me/fido2-keys", auth=U1_AUTH).json() == []
    signed = client.post("/api/v1/me/sign-ins", json={"serial": "AAAH-00125"}, auth=U2_AUTH)
    assert signed.json()["policy_status"] == "Active"
    policy = client.get("/api/v1/me/policy", auth=U2_AUTH).json()
    assert policy["settings"]["nba_idle_logout_min"] == 5


def test_administrator_actions_over_http(client: TestClient, nes: Nes) -> None:
    nes.enroll(U2, band("AAAH-00125"))
    r = client.post("/api/v1/bands/AAAH-00125/suspend", json={"notes": "away"}, auth=ADMIN_AUTH)
    assert r.status_code == 200 and r.json()["bands"][0]["is_active"] is False
    r = client.patch("/api/v1/bands/AAAH-00125", json={"is_active": True}, auth=ADMIN_AUTH)
    assert r.json()["bands"][0]["is_active"] is True
    r = client.post("/api/v1/bands/AAAH-00125/disconnect", auth=ADMIN_AUTH)
    assert r.status_code == 200 and r.json()["bands"] == []
    audit = client.get("/api/v1/audit", params={"account": U2, "table": "assignments"},
                       auth=ADMIN_AUTH).json()
    assert [e["op"] for e in audit] == ["create", "update", "update", "delete"]
    assert audit[-1]["actor"] == ADMIN
    created = client.post("/api/v1/policies", auth=ADMIN_AUTH, json={
        "name": "Self-service", "settings": {"Allow a user to re-enroll / re-register their "
                                             "Nymi Band": True}})
    assert created.status_code == 201
    assert created.json()["settings"]["self_reenroll_own"] is True
    r = client.put("/api/v1/users/tw-user2/individual-policy", json={"policy": "Self-service"},
                   auth=ADMIN_AUTH)
    assert r.json()["individual_policy"] == "Self-service"
    assert_error(client.post("/api/v1/policies", json={"name": "self-service"},
                             auth=ADMIN_AUTH), 409)
    assert_error(client.get("/api/v1/bands/ZZZZ-00000", auth=ADMIN_AUTH), 404)
    assert_error(client.get("/api/v1/users/ghost", auth=ADMIN_AUTH), 404)


MALFORMED = [
    ("/api/v1/me/enrollments", {"device_id": "d"}, "body.serial: Field required"),
    ("/api/v1/me/enrollments", {"serial": "aaah-1", "device_id": "d"}, "body.serial"),
    ("/api/v1/me/enrollments", {**enroll_body("AAAH-00125"), "owner": "x"},
     "body.owner: Extra inputs are not permitted"),
    ("/api/v1/me/enrollments", {**enroll_body("AAAH-00125"), "label": "X" * 13}, "body.label"),
    ("/api/v1/me/enrollments", [1, 2], "body"),
    ("/api/v1/me/enrollments", {**enroll_body("AAAH-00125"), "seos_enabled": "perhaps"},
     "body.seos_enabled"),
    ("/api/v1/me/fido2-keys", {"serial": "AAAH-00125", "rp_id": "x", "credential_id": "***",
                               "public_key_cose": "pQE"}, "must be base64url"),
    ("/api/v1/me/sign-ins", {"serial": None}, "body.serial"),
    ("/api/v1/me/enrollment-checks", None, "body: Field required"),
]


def test_malformed_bodies_get_a_readable_422(client: TestClient) -> None:
    for path, body, fragment in MALFORMED:
        found = assert_error(client.post(path, json=body, auth=U2_AUTH), 422)
        assert found["error"].startswith("invalid request: "), found
        assert fragment in found["error"], (fragment, found["error"])
        assert isinstance(found["detail"], list) and found["detail"][0]["loc"]


def test_invalid_json_and_bad_paths(client: TestClient) -> None:
    raw = client.post("/api/v1/me/enrollments", content=b"{not json",
                      headers={"Content-Type": "application/json"}, auth=U2_AUTH)
    assert "JSON" in assert_error(raw, 422)["error"]
    binary = client.post("/api/v1/me/enrollments", content=b"\xff\xfe\x00",
                         headers={"Content-Type": "application/json"}, auth=U2_AUTH)
    assert assert_error(binary, 422)["error"].startswith("invalid request: body")
    assert_error(client.get("/api/v1/bands/not-a-serial", auth=ADMIN_AUTH), 422)
    assert_error(client.post("/api/v1/eam-entries/0/blacklist", auth=ADMIN_AUTH), 422)
    assert_error(client.patch("/api/v1/policies/Default Settings Set", auth=ADMIN_AUTH,
                              json={"settings": {"nba_idle_logout_min": 0}}), 422)
    assert_error(client.get("/api/v1/no-such-route", auth=ADMIN_AUTH), 404)


def test_unexpected_errors_are_500_with_a_generic_body(nes: Nes, monkeypatch) -> None:
    def broken() -> None:
        raise RuntimeError("database on fire: secret detail")
    monkeypatch.setattr(nes, "policies", broken)
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        body = assert_error(c.get("/api/v1/policies", auth=ADMIN_AUTH), 500)
    assert body == {"error": "internal server error", "detail": None}


def test_openapi_is_published(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/api/v1/me/enrollments" in spec["paths"]
    assert "/api/v1/bands/{serial}/suspend" in spec["paths"]
    assert {"HTTPBasic", "HTTPBearer"} <= set(spec["components"]["securitySchemes"])


def test_site_app_mounts_each_server() -> None:
    directory = Directory(scrypt_n=2**8)
    directory.add_user(U2, PASSWORD)
    with memory_site("it-ot", directory=directory) as site, \
            TestClient(create_site_app(site)) as c:
        assert c.get("/").json()["servers"] == {"enrollment": "/enrollment/api/v1",
                                                "registration": "/registration/api/v1"}
        assert c.get("/registration/api/v1/health").json()["nes"] == "registration"
        r = c.post("/enrollment/api/v1/me/enrollments", json=enroll_body("AAAH-00125"),
                   auth=U2_AUTH)
        assert r.status_code == 201
        assert c.get("/registration/api/v1/me", auth=U2_AUTH).json()["nes_user"] is None
        assert c.get("/enrollment/openapi.json").status_code == 200


def test_basic_header_with_bare_username(client: TestClient) -> None:
    token = base64.b64encode(f"tw-user2:{PASSWORD}".encode()).decode()
    r = client.get("/api/v1/me", headers={"Authorization": f"Basic {token}"})
    assert r.status_code == 200 and r.json()["directory"]["account"] == U2
