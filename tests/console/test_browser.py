"""The console in a real browser: the vendor's self-service example on both servers of an IT/OT
site, live updates, and the accessibility basics (labels, table headers, keyboard)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simulator.nes import Site
from tests.console.site import (
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    ROOT,
    nymi_band,
    seed_site,
    served,
    sign_in,
)

playwright = pytest.importorskip("playwright.sync_api")
SCREENSHOT = ROOT / "docs" / "images" / "nes-console-user-properties.png"
SERVERS = ("enrollment", "registration")


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    with seed_site(tmp_path / "fleet") as seeded:
        yield seeded


@pytest.fixture
def base(site: Site) -> Iterator[str]:
    with served(site) as url:
        yield url


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        pytest.skip("Debian's chromium is not installed (scripts/setup.sh installs it)")
    with playwright.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def band_rows(page: Any) -> dict[str, tuple[str, str]]:
    rows = {}
    page.locator("#bands").wait_for()
    for row in page.locator("#bands tbody tr[data-serial]").all():
        rows[str(row.get_attribute("data-serial"))] = (
            row.locator(".is-active").inner_text().strip(),
            row.locator(".is-primary").inner_text().strip())
    return rows


def test_self_service_example_on_both_servers_of_an_it_ot_site(
        site: Site, base: str, browser: Any) -> None:
    pages = {}
    for server in SERVERS:
        page = browser.new_page(viewport={"width": 1100, "height": 700})
        sign_in(page, base, server)
        page.get_by_role("link", name="Policies").click()
        page.get_by_label("Allow a user to re-enroll any active Nymi Band").check()
        page.get_by_role("button", name="Save policy").click()
        assert "saved" in page.locator(".flash").inner_text()
        assert page.get_by_label("Allow a user to re-enroll any active Nymi Band").is_checked()
        page.get_by_role("link", name="Users").click()
        page.get_by_label("Username, first or last name").fill("tw-user2")
        page.get_by_role("button", name="Search").click()
        page.get_by_role("link", name="CORP\\tw-user2").click()
        assert band_rows(page) == {"AAAH-00125": ("Active", "Primary")}
        pages[server] = page
    for nes in site:
        assert nes.effective_policy("CORP\\tw-user2").self_reenroll_any
        changes = [e for e in nes.audit(table="policies") if e.actor == "CORP\\nes-admin"]
        assert changes and {"self_reenroll_any": True, "self_reenroll_own": True}.items() <= (
            changes[-1].after or {}).items()

    done = nymi_band(site.root or Path(), "--target", "sim:ACAK-00056", "reenroll", "--user",
                     "tw-user2", "--password", PASSWORD, "--json", admin=None)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["serial"] == "ACAK-00056"

    for server, page in pages.items():
        # No reload: the page updates itself when the server's data change.
        page.locator('#bands tr[data-serial="ACAK-00056"]').wait_for(timeout=20_000)
        assert band_rows(page) == {"AAAH-00125": ("", "Primary"),
                                   "ACAK-00056": ("Active", "")}, server
        headers = page.locator("#bands thead th").all_inner_texts()
        assert headers[:5] == ["Serial Number", "Is Active", "Is Primary", "Notes", "Created"]
    pages["enrollment"].bring_to_front()
    SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
    pages["enrollment"].screenshot(path=str(SCREENSHOT), full_page=True)


def test_accessibility_basics(base: str, browser: Any) -> None:
    page = browser.new_page()
    sign_in(page, base, "enrollment")
    for path in ("/users", "/user?account=CORP%5Ctw-user2", "/bands", "/policies", "/audit",
                 "/eam?account=CORP%5Ctw-user2", "/band?serial=AAAH-00125",
                 "/confirm?action=suspend&serial=AAAH-00125&account=CORP%5Ctw-user2"):
        page.goto(f"{base}/enrollment{path}")
        unlabelled = page.evaluate("""() => Array.from(document.querySelectorAll(
            'input:not([type=hidden]), select, textarea')).filter(el =>
            !(el.labels && el.labels.length) && !el.getAttribute('aria-label'))
            .map(el => el.name)""")
        assert unlabelled == [], (path, unlabelled)
        tables = page.evaluate("""() => Array.from(document.querySelectorAll('table')).map(t =>
            [t.querySelectorAll('thead th[scope=col]').length, !!t.querySelector('caption')])""")
        assert all(headers > 0 and caption for headers, caption in tables), (path, tables)
        assert page.locator("html").get_attribute("lang") == "en"
    # By keyboard only: search for a user, open User Properties, suspend a band, confirm.
    page.goto(f"{base}/enrollment/users")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.get_by_label("Username, first or last name").focus()
    page.keyboard.type("tw-user2")
    page.keyboard.press("Enter")
    page.get_by_role("link", name="CORP\\tw-user2").focus()
    page.keyboard.press("Enter")
    page.get_by_role("link", name="Suspend AAAH-00125").focus()
    page.keyboard.press("Enter")
    page.get_by_label("Notes").focus()
    page.keyboard.type("away")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "confirm"
    page.keyboard.press("Enter")
    page.locator(".flash").wait_for()
    assert band_rows(page) == {"AAAH-00125": ("", "Primary")}
