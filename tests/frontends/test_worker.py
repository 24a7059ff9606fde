"""The front ends' worker thread: a quick answer in the caller's turn, a slow one later."""

from __future__ import annotations

import asyncio
import threading

from simulator.frontends.worker import Outcome, Worker


async def test_a_quick_call_is_answered_in_the_callers_turn() -> None:
    worker = Worker(asyncio.get_running_loop().call_soon_threadsafe, "test-worker")
    later: list[Outcome] = []
    try:
        assert worker.run(lambda: b"ok", 5.0, later.append) == b"ok"
        await asyncio.sleep(0.01)
        assert later == []
    finally:
        worker.close()


async def test_a_slow_call_is_answered_later_on_the_loop() -> None:
    loop = asyncio.get_running_loop()
    worker = Worker(loop.call_soon_threadsafe, "test-worker")
    release = threading.Event()
    answered: asyncio.Future[Outcome] = loop.create_future()

    def slow() -> bytes:
        release.wait(5)
        return b"late"

    try:
        assert worker.run(slow, 0.001, answered.set_result) is None
        release.set()
        assert await asyncio.wait_for(answered, 5) == b"late"
    finally:
        worker.close()


async def test_what_a_call_raises_is_its_outcome() -> None:
    worker = Worker(asyncio.get_running_loop().call_soon_threadsafe, "test-worker")

    def failing() -> bytes:
        raise ValueError("broken")

    try:
        outcome = worker.run(failing, 5.0, lambda _outcome: None)
        assert isinstance(outcome, ValueError)
        assert worker.run(lambda: b"next", 5.0, lambda _outcome: None) == b"next"
    finally:
        worker.close()


async def test_calls_run_in_order_in_one_thread_and_it_ends_on_close() -> None:
    worker = Worker(asyncio.get_running_loop().call_soon_threadsafe, "test-worker")
    threads: list[threading.Thread] = []

    def record() -> bytes:
        threads.append(threading.current_thread())
        return b""

    for _ in range(3):
        worker.run(record, 5.0, lambda _outcome: None)
    worker.close()
    assert len(set(threads)) == 1 and threads[0] is not threading.main_thread()
    threads[0].join(5)
    assert not threads[0].is_alive()
