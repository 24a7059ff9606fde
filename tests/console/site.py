"""The seed site of the console tests, served as ``nymi-sim nes serve`` serves it, and a
real browser (Debian's chromium driven by Playwright; no browser download)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn

from hosttools.flows.enroll import enroll, register
from hosttools.site import open_flow_band
from simulator.fleet import Fleet
from simulator.nes import ADMIN_GROUP, Site, open_site
from simulator.nes.api import create_site_app
from simulator.nes.web import HELP_DESK_GROUP, READ_ONLY_GROUP

PASSWORD = "Passw0rd!"
ADMIN = "CORP\\nes-admin"
HELP_DESK = "CORP\\help-desk"
READER = "CORP\\reader"
U1, U2 = "CORP\\tw-user1", "CORP\\tw-user2"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]


def quiet(title: str, detail: dict[str, Any]) -> None:
    return None


def seed_site(root: Path) -> Site:
    """The vendor's example on an IT/OT site: tw-user2 enrolled AAAH-00125 and tw-user1
    ACAK-00056, each registered at the Registration NES; an administrator, a help desk and a
    read-only account."""
    fleet = Fleet(root, durable=False)
    for serial in ("AAAH-00125", "ACAK-00056"):
        fleet.add_band("nymi-band-3.0", serial)
    site = open_site(root, layout="it-ot")
    directory = site.directory
    directory.scrypt_n = 2**8
    directory.add_user(U2, PASSWORD, first_name="TW", last_name="User2")
    directory.add_user(U1, PASSWORD, first_name="TW", last_name="User1")
    directory.add_user(ADMIN, PASSWORD, first_name="Nes", last_name="Admin",
                       groups=[ADMIN_GROUP])
    directory.add_user(HELP_DESK, PASSWORD, groups=[HELP_DESK_GROUP])
    directory.add_user(READER, PASSWORD, groups=[READ_ONLY_GROUP])
    registration = site.registration
    assert registration is not None
    for account, serial in ((U2, "AAAH-00125"), (U1, "ACAK-00056")):
        with open_flow_band(f"sim:{serial}", sim_dir=root) as band:
            enroll(band, site.enrollment, account, PASSWORD, quiet)
            register(band, registration, account, PASSWORD, quiet, enrolled_at="enrollment")
    return site


@contextmanager
def served(site: Site) -> Iterator[str]:
    """The site's API and console on a free port of 127.0.0.1, in a thread."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_site_app(site), log_level="warning",
                                           lifespan="off"))
    started = threading.Event()
    original = server.startup

    async def startup(sockets: Any = None) -> None:
        await original(sockets=sockets)
        started.set()

    server.startup = startup  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    assert started.wait(30), "the console did not start"
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)
        sock.close()


def nymi_band(root: Path, *args: str, admin: str | None = ADMIN) -> subprocess.CompletedProcess[str]:
    """``nymi-band --sim-dir ROOT ARGS`` in another process (as the given administrator)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("NYMI_")}
    if admin is not None:
        env.update(NYMI_NES_USER=admin, NYMI_NES_PASSWORD=PASSWORD)
    return subprocess.run([sys.executable, "-m", "hosttools.cli", "--sim-dir", str(root), *args],
                          capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
                          check=False)


def sign_in(page: Any, base: str, server: str, account: str = ADMIN,
            password: str = PASSWORD) -> None:
    page.goto(f"{base}/{server}/login")
    page.get_by_label("Username").fill(account)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
