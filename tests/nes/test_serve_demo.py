"""A served site refuses to start while its directory holds a credential this project publishes
(the demo's), unless it is told it is a demonstration (``nymi-sim nes serve --demo``)."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from hosttools.demo import PASSWORD as DEMO_PASSWORD
from simulator.nes import ADMIN_GROUP, open_site


def _site(root: Path, admin_password: str) -> None:
    with open_site(root) as site:
        site.directory.add_user("CORP\\nes-admin", admin_password, groups=[ADMIN_GROUP])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _serve(root: Path, *extra: str) -> tuple[subprocess.Popen[str], int]:
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "simulator.cli", "nes", "serve", "--sim-dir", str(root),
         "--port", str(port), *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    return proc, port


def _wait_healthy(proc: subprocess.Popen[str], port: int) -> bool:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/nes/api/v1/health").status_code == 200:
                return True
        except httpx.TransportError:
            time.sleep(0.1)
    return False


def test_a_site_with_the_demo_password_is_not_served(tmp_path: Path) -> None:
    _site(tmp_path, DEMO_PASSWORD)
    proc, _ = _serve(tmp_path)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.terminate()
        proc.communicate(timeout=10)
        pytest.fail("the site was served with the published demo password")
    assert proc.returncode != 0
    assert err.startswith("error: ") and err.count("\n") == 1, err
    assert "CORP\\nes-admin" in err and "--demo" in err


def test_demo_flag_serves_it(tmp_path: Path) -> None:
    _site(tmp_path, DEMO_PASSWORD)
    proc, port = _serve(tmp_path, "--demo")
    try:
        assert _wait_healthy(proc, port), proc.stderr.read() if proc.stderr else ""
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_a_site_with_its_own_passwords_is_served(tmp_path: Path) -> None:
    _site(tmp_path, "a-password-of-this-site")
    proc, port = _serve(tmp_path)
    try:
        assert _wait_healthy(proc, port), proc.stderr.read() if proc.stderr else ""
    finally:
        proc.terminate()
        proc.communicate(timeout=10)


def test_every_demo_account_is_a_published_one() -> None:
    from hosttools.demo import USERS
    from simulator.nes.published import DEMO_ADMIN, PUBLISHED_CREDENTIALS

    published = {account for account, _ in PUBLISHED_CREDENTIALS}
    assert {*USERS, DEMO_ADMIN} <= published


def test_a_new_password_makes_the_site_servable(tmp_path: Path) -> None:
    from simulator.cli import main as nymi_sim
    from simulator.nes import NesConflict
    from simulator.nes.published import refuse_published_credentials

    _site(tmp_path, DEMO_PASSWORD)
    with open_site(tmp_path) as site, pytest.raises(NesConflict, match="CORP\\\\nes-admin"):
        refuse_published_credentials(site.directory)
    assert nymi_sim(["nes", "set-password", "nes-admin", "--password", "s3cret-of-this-site",
                     "--sim-dir", str(tmp_path)]) == 0
    with open_site(tmp_path) as site:
        refuse_published_credentials(site.directory)
        assert site.directory.authenticate("nes-admin", "s3cret-of-this-site") is not None
