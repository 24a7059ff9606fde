"""The worker thread of a front end whose authenticator may wait for the wearer.

A front end runs on an event loop; a request that may wait for the wearer (a button press on the
reference model) must not hold the loop, which keeps sending KEEPALIVEs and takes CANCEL. So the
request goes to one worker thread, and the loop waits a few milliseconds for the answer in its
own thread: most requests finish by then (nothing waits), and are answered at once, in the same
turn of the loop; a request that takes longer is answered later, through the loop.

The hand-over is two C-level queue operations (``queue.SimpleQueue``) and an uncontended lock:
about a third of ``ThreadPoolExecutor.submit`` + ``concurrent.futures.wait``, which build a
waiter, a condition and several Python-level locks for every request.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable

__all__ = ["Outcome", "Worker"]

logger = logging.getLogger(__name__)

#: What a call ended with: its answer, or what it raised.
Outcome = bytes | BaseException


class _Job:
    __slots__ = ("call", "later", "lock", "reply")

    def __init__(self, call: Callable[[], bytes]) -> None:
        self.call = call
        self.reply: queue.SimpleQueue[Outcome] = queue.SimpleQueue()
        self.lock = threading.Lock()
        self.later: Callable[[Outcome], None] | None = None


class Worker:
    """One daemon thread running calls in order, started on first use.

    :param schedule: hands a callback to the loop from the worker thread (the loop's
        ``call_soon_threadsafe``).
    """

    def __init__(self, schedule: Callable[..., object], name: str) -> None:
        self._schedule = schedule
        self._name = name
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None

    def run(self, call: Callable[[], bytes], wait_s: float,
            later: Callable[[Outcome], None]) -> Outcome | None:
        """Run ``call`` in the worker. Its outcome if it ends within ``wait_s``; otherwise
        ``None``, and ``later(outcome)`` is scheduled on the loop when it ends."""
        job = _Job(call)
        if self._thread is None:
            self._thread = threading.Thread(target=self._work, name=self._name, daemon=True)
            self._thread.start()
        self._jobs.put(job)
        try:
            return job.reply.get(timeout=wait_s)
        except queue.Empty:
            pass
        with job.lock:
            try:
                return job.reply.get_nowait()  # it ended between the timeout and the lock
            except queue.Empty:
                job.later = later
        return None

    def close(self) -> None:
        """Let the thread end after the calls already handed over."""
        if self._thread is not None:
            self._jobs.put(None)
            self._thread = None

    def _work(self) -> None:
        while (job := self._jobs.get()) is not None:
            outcome: Outcome
            try:
                outcome = job.call()
            except Exception as exc:  # the caller reports it
                outcome = exc
            with job.lock:
                later = job.later
                if later is None:
                    job.reply.put(outcome)
                    continue
            try:
                self._schedule(later, outcome)
            except RuntimeError:  # the loop is closed: nobody is left to answer
                logger.debug("an answer came after the loop closed")
