"""What an unauthenticated caller can make the server spend: bodies are bounded before they are
read, wrong passwords lock the account and throttle the client, verified credentials are not
hashed again, password hashing runs a bounded number at a time, tokens per user are capped."""

from __future__ import annotations

import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from simulator.nes import ADMIN_GROUP, Directory, DirectoryUser, Nes, create_app
from simulator.nes.api_guard import ApiLimits
from simulator.nes.served import Served
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import ADMIN, U1, U2
from tests.nes.http_client import TestClient

MIB = 1024 * 1024


def _rss() -> int:
    pages = int(Path("/proc/self/statm").read_text().split()[1])
    return pages * 4096


def _send_until_answered(port: int, head: bytes, chunk: bytes, total: int) -> tuple[bytes, int]:
    """Send ``head`` and then up to ``total`` bytes of ``chunk``s; stop as soon as the server
    answers. Returns the answer's first bytes and how many body bytes were sent."""
    sent = 0
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(head)
        while sent < total:
            readable, _, _ = select.select([sock], [], [], 0)
            if readable:
                break
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
            sent += len(chunk)
        sock.settimeout(30)
        answer = b""
        while b"\r\n\r\n" not in answer:
            data = sock.recv(65536)
            if not data:
                break
            answer += data
    return answer, sent


@pytest.fixture
def served(nes: Nes) -> Iterator[Served]:
    with Served(create_app(nes)) as s:
        yield s


def test_a_100_mib_body_is_refused_before_it_is_read(served: Served) -> None:
    before = _rss()
    head = (b"POST /api/v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n" % (100 * MIB))
    answer, sent = _send_until_answered(served.port, head, b" " * (256 * 1024), 100 * MIB)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 100 * MIB
    assert _rss() - before < 32 * MIB


def test_a_chunked_body_is_cut_off_at_the_limit(served: Served) -> None:
    before = _rss()
    head = (b"POST /api/v1/me/enrollments HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
    piece = b" " * (256 * 1024)
    chunk = b"%x\r\n%s\r\n" % (len(piece), piece)
    answer, sent = _send_until_answered(served.port, head, chunk, 100 * MIB)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert sent < 100 * MIB
    assert _rss() - before < 32 * MIB


def test_an_oversized_body_gets_a_json_error(nes: Nes) -> None:
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        r = c.post("/api/v1/login", content=b"{" + b" " * (2 * MIB) + b"}",
                   headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        assert set(r.json()) == {"error", "detail"} and "too large" in r.json()["error"]
        ok = c.post("/api/v1/login", json={"username": U2, "password": PASSWORD})
        assert ok.status_code == 200


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_wrong_logins_lock_the_account_even_for_the_right_password(nes: Nes) -> None:
    clock = Clock()
    with TestClient(create_app(nes, clock=clock), raise_server_exceptions=False) as c:
        for _ in range(300):
            r = c.post("/api/v1/login", json={"username": U2, "password": "wrong"})
            assert r.status_code in (401, 429)
        locked = c.post("/api/v1/login", json={"username": U2, "password": PASSWORD})
        assert locked.status_code == 429, locked.text
        assert int(locked.headers["Retry-After"]) > 0
        assert "try again" in locked.json()["error"]
        assert c.get("/api/v1/me", auth=(U2, PASSWORD)).status_code == 429
        # The same account under its bare name is the same account.
        assert c.post("/api/v1/login", json={"username": "tw-user2",
                                             "password": PASSWORD}).status_code == 429
        clock.now += 3600
        assert c.post("/api/v1/login", json={"username": U2,
                                             "password": PASSWORD}).status_code == 200


def test_a_few_wrong_passwords_lock_only_that_account(nes: Nes) -> None:
    limits = ApiLimits()
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        for _ in range(limits.account_failures):
            assert c.get("/api/v1/me", auth=(U2, "wrong")).status_code == 401
        assert c.get("/api/v1/me", auth=(U2, PASSWORD)).status_code == 429
        assert c.get("/api/v1/me", auth=(U1, PASSWORD)).status_code == 200


def test_one_client_guessing_across_accounts_is_throttled(nes: Nes) -> None:
    limits = ApiLimits()
    clock = Clock()
    with TestClient(create_app(nes, clock=clock), raise_server_exceptions=False) as c:
        for i in range(limits.client_failures):
            assert c.get("/api/v1/me", auth=(f"CORP\\guess{i}", "x")).status_code == 401
        refused = c.get("/api/v1/me", auth=(U1, PASSWORD))
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) > 0
        clock.now += 3600
        assert c.get("/api/v1/me", auth=(U1, PASSWORD)).status_code == 200


class CountingDirectory(Directory):
    """The directory, counting password verifications and how many ran at once."""

    def __init__(self) -> None:
        super().__init__(scrypt_n=2**8)
        self.verifications = 0
        self.running = 0
        self.most_at_once = 0
        self._count_lock = threading.Lock()

    def authenticate(self, account: str, password: str) -> DirectoryUser | None:
        with self._count_lock:
            self.verifications += 1
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(0.02)  # hold the slot long enough for callers to overlap
            return super().authenticate(account, password)
        finally:
            with self._count_lock:
                self.running -= 1


@pytest.fixture
def counting() -> CountingDirectory:
    d = CountingDirectory()
    for account in (U1, U2):
        d.add_user(account, PASSWORD)
    d.add_user(ADMIN, PASSWORD, groups=[ADMIN_GROUP])
    return d


def test_verified_basic_credentials_are_not_hashed_again(counting: CountingDirectory) -> None:
    with Nes.open("sqlite://", directory=counting) as nes, \
            TestClient(create_app(nes), raise_server_exceptions=False) as c:
        for _ in range(10):
            assert c.get("/api/v1/me", auth=(U2, PASSWORD)).status_code == 200
        assert counting.verifications == 1
        counting.set_password(U2, "changed")
        assert c.get("/api/v1/me", auth=(U2, PASSWORD)).status_code == 401
        assert c.get("/api/v1/me", auth=(U2, "changed")).status_code == 200


def test_a_locked_account_is_refused_without_hashing(counting: CountingDirectory) -> None:
    limits = ApiLimits()
    with Nes.open("sqlite://", directory=counting) as nes, \
            TestClient(create_app(nes), raise_server_exceptions=False) as c:
        for _ in range(limits.account_failures):
            c.get("/api/v1/me", auth=(U2, "wrong"))
        spent = counting.verifications
        for _ in range(20):
            assert c.get("/api/v1/me", auth=(U2, "wrong")).status_code == 429
        assert counting.verifications == spent


def test_password_hashing_runs_a_bounded_number_at_a_time(counting: CountingDirectory) -> None:
    limits = ApiLimits()
    with Nes.open("sqlite://", directory=counting) as nes, \
            TestClient(create_app(nes), raise_server_exceptions=False) as c:
        def guess(i: int) -> None:
            c.get("/api/v1/me", auth=(f"CORP\\nobody{i}", "x"))

        threads = [threading.Thread(target=guess, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert counting.verifications == 8
    assert counting.most_at_once <= limits.concurrent_hashes


def test_tokens_per_user_are_capped(nes: Nes) -> None:
    limits = ApiLimits()
    with TestClient(create_app(nes), raise_server_exceptions=False) as c:
        tokens = [c.post("/api/v1/login", json={"username": U2, "password": PASSWORD}
                         ).json()["access_token"] for _ in range(limits.tokens_per_user + 5)]
        live = [t for t in tokens
                if c.get("/api/v1/me", headers={"Authorization": f"Bearer {t}"}
                         ).status_code == 200]
        assert live == tokens[-limits.tokens_per_user:]
        # Another user's sign-ins do not evict these.
        c.post("/api/v1/login", json={"username": U1, "password": PASSWORD})
        assert c.get("/api/v1/me", headers={"Authorization": f"Bearer {tokens[-1]}"}
                     ).status_code == 200


def test_the_http_client_reports_a_lockout_as_refused_credentials(nes: Nes) -> None:
    from hosttools.nes_http import NesCredentialsRefused, NesHttp

    with Served(create_app(nes)) as served:
        client = NesHttp(served.url)
        try:
            for _ in range(ApiLimits().account_failures):
                assert client.sign_in(U2, "wrong") is None
            with pytest.raises(NesCredentialsRefused, match="try again in"):
                client.sign_in(U2, PASSWORD)
        finally:
            client.close()
