"""Waits, cancels, and band events arriving from another thread while a command runs."""

from __future__ import annotations

import os
import threading
import time

import cbor2
from fido2.ctap import CtapError

from simulator.band.ctap import AutoWearer, PresenceResult

from .conftest import REFERENCE

ERR = CtapError.ERR


class WaitingWearer(AutoWearer):
    """Presence that never comes: waits until cancelled or timed out (polling, like a band)."""

    def __init__(self, storage) -> None:  # type: ignore[no-untyped-def]
        super().__init__(storage)
        self.waiting = threading.Event()

    def wait_for_presence(self, timeout_s: float, cancel: threading.Event) -> PresenceResult:
        self.waiting.set()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if cancel.is_set():
                return PresenceResult.CANCELLED
            time.sleep(0.002)
        return PresenceResult.TIMEOUT


def _mc_request() -> bytes:
    return b"\x01" + cbor2.dumps(
        {
            1: os.urandom(32),
            2: {"id": "example.com"},
            3: {"id": b"u"},
            4: [{"type": "public-key", "alg": -7}],
        }
    )


def _run_in_thread(band, **kw):  # type: ignore[no-untyped-def]
    result: list[bytes] = []
    worker = threading.Thread(
        target=lambda: result.append(band.auth.process_cbor(_mc_request(), **kw))
    )
    worker.start()
    assert band.wearer.waiting.wait(2)
    return worker, result


def test_transport_cancel_during_a_wait(make_band) -> None:
    band = make_band(REFERENCE, WaitingWearer)
    cancel = threading.Event()
    worker, result = _run_in_thread(band, cancel=cancel)
    cancel.set()
    worker.join(2)
    assert result == [bytes((ERR.KEEPALIVE_CANCEL,))]


def test_power_cycle_from_another_thread_does_not_block(make_band) -> None:
    band = make_band(REFERENCE, WaitingWearer)
    worker, result = _run_in_thread(band)
    started = time.monotonic()
    band.auth.power_cycle()  # the world's thread: returns at once, aborts the wait
    assert time.monotonic() - started < 0.5
    worker.join(2)
    assert result == [bytes((ERR.KEEPALIVE_CANCEL,))]
    assert band.cbor(b"\x04")[0] == 0  # the next command runs normally


def test_erase_from_another_thread_during_a_wait(make_band) -> None:
    band = make_band(REFERENCE, WaitingWearer)
    worker, result = _run_in_thread(band)
    band.storage.crypto_erase()  # the band's own Delete User Data: erase, then the hook
    band.auth.on_user_data_erased()
    worker.join(2)
    assert result == [bytes((ERR.KEEPALIVE_CANCEL,))]
