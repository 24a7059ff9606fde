"""Two users racing to self-enroll the same band at the same moment (issue 5 acceptance):
exactly one wins, the other gets a clear refusal, and the database stays consistent. Real
concurrent transactions, on SQLite and on PostgreSQL, from threads and from processes."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest

from simulator.nes import (
    OTHER_USER_MESSAGE,
    Directory,
    EnrollmentResult,
    Nes,
    NesConflict,
    NesRefusal,
    rules,
)
from simulator.nes import enrollment as enrollment_module
from tests.nes.helpers import U1, U2, U3, band, self_service
from tests.nes.race_worker import enroll_when_released

SERIALS = [f"RACE-{n:05d}" for n in range(3)]


@pytest.fixture
def rendezvous(monkeypatch: pytest.MonkeyPatch) -> None:
    """Hold each enrollment after it has read the records until the other has read them too
    (or for at most 0.3 s: SQLite's BEGIN IMMEDIATE lets only one writer in at a time)."""
    barrier = threading.Barrier(2, timeout=0.3)
    real = rules.decide

    def decide(**kwargs: object) -> rules.Decision:
        decision = real(**kwargs)  # type: ignore[arg-type]
        try:
            barrier.wait()
        except threading.BrokenBarrierError:
            pass
        return decision

    monkeypatch.setattr(enrollment_module, "decide", decide)


def assert_consistent(nes: Nes) -> None:
    owners: dict[str, str] = {}
    for user in nes.users():
        active = [b.serial for b in user.bands if b.is_active]
        assert len(active) <= 1, f"{user.account} has several active bands: {active}"
        for row in user.bands:
            assert row.serial not in owners, f"{row.serial} has two owners"
            owners[row.serial] = user.account
    for view in nes.bands():
        assert view.owner == owners.get(view.serial)


def race(nes: Nes, serial: str, accounts: tuple[str, str], **kwargs: object
         ) -> list[EnrollmentResult | Exception]:
    start = threading.Barrier(2)

    def attempt(account: str) -> EnrollmentResult | Exception:
        start.wait()
        try:
            return nes.enroll(account, band(serial), **kwargs)  # type: ignore[arg-type]
        except (NesRefusal, NesConflict) as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        return list(pool.map(attempt, accounts))


@pytest.mark.usefixtures("rendezvous")
def test_two_users_race_for_a_free_band(nes: Nes, backend: str,
                                        caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="simulator.nes.db")
    self_service(nes, own=True, any_band=False)
    for serial in SERIALS:
        outcomes = race(nes, serial, (U1, U2))
        winners = [o for o in outcomes if isinstance(o, EnrollmentResult)]
        losers = [o for o in outcomes if isinstance(o, Exception)]
        assert len(winners) == 1 and len(losers) == 1
        assert isinstance(losers[0], NesRefusal)
        assert str(losers[0]) in (OTHER_USER_MESSAGE,
                                  f"A Nymi Band has been assigned to {winners[0].account}, "
                                  "however it cannot be found.")
        assert nes.band(serial).owner == winners[0].account
        assert_consistent(nes)
        nes.disconnect(serial)
    if backend == "postgresql":
        # Both transactions really ran at once: the loser's first attempt failed and was rerun.
        assert "write transaction lost a race" in caplog.text


@pytest.mark.usefixtures("rendezvous")
def test_race_with_any_band_policy_and_band_version(nes: Nes) -> None:
    """With "any active band" on, both may take the band from its owner; the band version seen
    at the tap decides: one wins, the other is told to tap again."""
    self_service(nes, own=True, any_band=True)
    nes.enroll(U3, band("ACAK-00056"))
    seen = {a: nes.check_enrollment(a, "ACAK-00056").band_version for a in (U1, U2)}
    assert seen[U1] == seen[U2]
    outcomes = race(nes, "ACAK-00056", (U1, U2), expected_band_version=seen[U1])
    winners = [o for o in outcomes if isinstance(o, EnrollmentResult)]
    losers = [o for o in outcomes if isinstance(o, Exception)]
    assert len(winners) == 1 and len(losers) == 1
    assert isinstance(losers[0], NesConflict)
    assert "tap the band again" in str(losers[0])
    assert winners[0].previous_owner == U3
    assert nes.band("ACAK-00056").owner == winners[0].account
    assert nes.user(U3).bands == ()
    assert_consistent(nes)


@pytest.mark.usefixtures("rendezvous")
def test_one_user_racing_two_bands_keeps_one_active(nes: Nes) -> None:
    self_service(nes, own=True)
    start = threading.Barrier(2)

    def attempt(serial: str) -> object:
        start.wait()
        try:
            return nes.enroll(U2, band(serial))
        except NesRefusal as exc:
            return exc

    with ThreadPoolExecutor(2) as pool:
        list(pool.map(attempt, ["AAAH-00125", "ACAK-00056"]))
    assert_consistent(nes)
    assert sum(b.is_active for b in nes.user(U2).bands) == 1


def test_two_processes_race_for_a_band(make_url: Callable[..., str],
                                       directory: Directory) -> None:
    url = make_url()
    with Nes.open(url, directory=directory) as nes:
        for account in (U1, U2):
            nes.ensure_user(account)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    results = ctx.Queue()
    workers = [ctx.Process(target=enroll_when_released,
                           args=(url, account, "ACAK-00056", start, results))
               for account in (U1, U2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
        assert worker.exitcode == 0
    outcomes = sorted(results.get(timeout=5)[1:] for _ in workers)
    assert [o[0] for o in outcomes] == ["enrolled", "refused"]
    assert outcomes[1][1] == OTHER_USER_MESSAGE
    with Nes.open(url, directory=directory) as nes:
        assert_consistent(nes)
        assert nes.band("ACAK-00056").owner in (U1, U2)
