"""The console refuses every page and action without a session, with a lower role, without the
right CSRF token, with another user's identifiers or from another site; hostile text is shown
as text; repeated wrong passwords lock the account. Nothing changes when it refuses."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from simulator.nes import ADMIN_GROUP, BandFacts, Site, memory_site
from simulator.nes.api import create_site_app
from simulator.nes.models import EnrollmentDestination
from simulator.nes.web import HELP_DESK_GROUP, READ_ONLY_GROUP

PW = "pw-Secret1"
HOSTILE = '<script>alert("x")</script><img src=x onerror=alert(1)>'
U1, U2 = "CORP\\tw-user1", "CORP\\tw-user2"
PAGES = ["/users", "/user?account=CORP%5Ctw-user2", "/band?serial=AAAH-00125", "/bands",
         "/policies", "/eam?account=CORP%5Ctw-user2", "/audit", "/audit.csv",
         "/confirm?action=suspend&serial=AAAH-00125&account=CORP%5Ctw-user2",
         "/eam/confirm?action=blacklist&entry=1&account=CORP%5Ctw-user2"]


def _posts(entry: int) -> list[tuple[str, dict[str, str]]]:
    return [
        ("/act", {"action": "suspend", "serial": "AAAH-00125", "account": U2}),
        ("/act", {"action": "disconnect", "serial": "AAAH-00125", "account": U2}),
        ("/act", {"action": "reassign", "serial": "AAAH-00125", "account": U2, "to": U1}),
        ("/band/save", {"serial": "AAAH-00125", "account": U2, "notes": "x"}),
        ("/user/policy", {"account": U2, "policy": "Liveness Detection Disabled"}),
        ("/policies/save", {"name": "Default Settings Set", "self_service": "any"}),
        ("/eam/act", {"action": "blacklist", "entry": str(entry), "account": U2}),
    ]


@pytest.fixture
def site() -> Iterator[Site]:
    site = memory_site("it-ot")
    d = site.directory
    d.scrypt_n = 2**4
    d.add_user("CORP\\admin", PW, groups=[ADMIN_GROUP])
    d.add_user("CORP\\helpdesk", PW, groups=[HELP_DESK_GROUP])
    d.add_user("CORP\\reader", PW, groups=[READ_ONLY_GROUP])
    d.add_user(U2, PW, first_name=HOSTILE, last_name="User2")
    d.add_user(U1, PW, first_name="TW", last_name="User1")
    for nes in site:
        nes.update_policy("Default Settings Set", {
            "enrollment_destination": EnrollmentDestination.NES_AND_EVIDIAN})
        nes.enroll(U2, BandFacts("AAAH-00125", device_id="d1", nfc_id="04A1"))
        nes.enroll(U1, BandFacts("ACAK-00056", device_id="d2", nfc_id="04B2"))
        nes.update_band("AAAH-00125", notes=HOSTILE)
    yield site
    site.close()


@pytest.fixture
def client(site: Site) -> TestClient:
    return TestClient(create_site_app(site), base_url="http://testserver")


def login(client: TestClient, account: str, server: str = "enrollment",
          password: str = PW) -> Any:
    page = client.get(f"/{server}/login")
    nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
    assert nonce is not None
    return client.post(f"/{server}/login", data={"username": account, "password": password,
                                                 "nonce": nonce.group(1)},
                       follow_redirects=False)


def csrf_of(client: TestClient, server: str = "enrollment") -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', client.get(f"/{server}/users").text)
    assert found is not None
    return found.group(1)


def snapshot(site: Site) -> list[Any]:
    return [(nes.user(U2), nes.user(U1), len(nes.audit()), nes.policies(),
             nes.eam_entries(U2)) for nes in site]


def entry_of(site: Site, account: str) -> int:
    return site.server("enrollment").eam_entries(account)[0].id


def test_no_session_every_page_and_action_refused(site: Site, client: TestClient) -> None:
    before = snapshot(site)
    for path in PAGES:
        r = client.get(f"/enrollment{path}", follow_redirects=False)
        assert r.status_code == 303 and "/enrollment/login" in r.headers["location"], path
    assert client.get("/enrollment/live").status_code == 401
    for path, form in _posts(entry_of(site, U2)):
        r = client.post(f"/enrollment{path}", data={**form, "csrf": "x"},
                        follow_redirects=False)
        assert r.status_code == 303 and "/login" in r.headers["location"], path
    assert snapshot(site) == before


@pytest.mark.parametrize("account", ["CORP\\helpdesk", "CORP\\reader"])
def test_lower_roles_cannot_act(site: Site, client: TestClient, account: str) -> None:
    before = snapshot(site)
    assert login(client, account).status_code == 303
    csrf = csrf_of(client)
    for path, form in _posts(entry_of(site, U2)):
        r = client.post(f"/enrollment{path}", data={**form, "csrf": csrf})
        assert r.status_code == 403 and "administrator role" in r.text, path
    r = client.get("/enrollment/confirm?action=suspend&serial=AAAH-00125&account=CORP%5Ctw-user2")
    assert r.status_code == 403
    user_page = client.get("/enrollment/user?account=CORP%5Ctw-user2").text
    assert "/confirm?action=" not in user_page and "Save policy" not in user_page
    audit = client.get("/enrollment/audit")
    assert audit.status_code == (200 if account == "CORP\\helpdesk" else 403)
    assert snapshot(site) == before


def test_a_directory_user_without_a_console_role_cannot_sign_in(client: TestClient) -> None:
    r = login(client, U2)
    assert r.status_code == 403 and "not a member" in r.text
    assert client.get("/enrollment/users", follow_redirects=False).status_code == 303


def test_missing_or_wrong_csrf_changes_nothing(site: Site, client: TestClient) -> None:
    login(client, "CORP\\admin")
    before = snapshot(site)
    other = TestClient(client.app)
    login(other, "CORP\\admin")
    foreign = csrf_of(other)  # another session's token
    for token in (None, "", "wrong", foreign):
        for path, form in _posts(entry_of(site, U2)):
            data = form if token is None else {**form, "csrf": token}
            r = client.post(f"/enrollment{path}", data=data)
            assert r.status_code == 403 and "security token" in r.text, (path, token)
    r = client.post("/enrollment/act", data={"action": "suspend", "serial": "AAAH-00125",
                                             "account": U2, "csrf": csrf_of(client)},
                    headers={"Origin": "http://evil.example"})
    assert r.status_code == 403 and "another site" in r.text
    assert snapshot(site) == before
    r = client.post("/enrollment/logout", data={"csrf": "wrong"})
    assert r.status_code == 403
    assert client.get("/enrollment/users").status_code == 200


def test_another_users_identifiers_change_nothing(site: Site, client: TestClient) -> None:
    login(client, "CORP\\admin")
    csrf = csrf_of(client)
    before = snapshot(site)
    # A band of tw-user1 posted from tw-user2's page, and tw-user1's EAM entry likewise.
    for form in ({"action": "suspend", "serial": "ACAK-00056", "account": U2},
                 {"action": "disconnect", "serial": "ACAK-00056", "account": U2}):
        r = client.post("/enrollment/act", data={**form, "csrf": csrf})
        assert r.status_code == 409 and "not a Nymi Band of CORP\\tw-user2" in r.text
    r = client.post("/enrollment/band/save", data={"serial": "ACAK-00056", "account": U2,
                                                   "csrf": csrf, "notes": "x"})
    assert r.status_code == 409
    r = client.post("/enrollment/eam/act", data={"action": "blacklist", "account": U2,
                                                 "entry": str(entry_of(site, U1)),
                                                 "csrf": csrf})
    assert r.status_code == 409 and "has no EAM entry" in r.text
    # The session of one server is no session on the other.
    assert client.get("/registration/users", follow_redirects=False).status_code == 303
    r = client.post("/registration/act", data={"action": "suspend", "serial": "AAAH-00125",
                                               "account": U2, "csrf": csrf},
                    follow_redirects=False)
    assert r.status_code == 303
    assert snapshot(site) == before


def test_hostile_names_and_notes_are_shown_as_text(site: Site, client: TestClient) -> None:
    login(client, "CORP\\admin")
    for path in ("/users", "/user?account=CORP%5Ctw-user2", "/band?serial=AAAH-00125",
                 "/bands", "/audit"):
        html = client.get(f"/enrollment{path}").text
        assert "<script>alert" not in html and "<img src=x" not in html, path
    html = client.get("/enrollment/user?account=CORP%5Ctw-user2").text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert "script-src 'self'" in client.get("/enrollment/users").headers[
        "content-security-policy"]
    csv = client.get("/enrollment/audit.csv").text
    assert HOSTILE.replace('"', '""') in csv or "<script>" in csv


def test_repeated_wrong_passwords_lock_the_account(site: Site, client: TestClient) -> None:
    for _ in range(5):
        assert login(client, "CORP\\admin", password="wrong").status_code == 401
    r = login(client, "CORP\\admin")
    assert r.status_code == 401 and "locked" in r.text
    assert client.get("/enrollment/users", follow_redirects=False).status_code == 303


def test_session_cookie_flags_and_sign_out(client: TestClient) -> None:
    r = login(client, "CORP\\admin")
    cookie = r.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/enrollment/" in cookie
    r = client.post("/enrollment/logout", data={"csrf": csrf_of(client)},
                    follow_redirects=False)
    assert r.status_code == 303
    assert client.get("/enrollment/users", follow_redirects=False).status_code == 303


def test_a_forged_sign_in_without_the_form_nonce_is_refused(client: TestClient) -> None:
    r = client.post("/enrollment/login", data={"username": "CORP\\admin", "password": PW},
                    follow_redirects=False)
    assert r.status_code == 403
