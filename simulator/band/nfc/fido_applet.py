"""The FIDO applet: CTAP over NFC (CTAP 2.1 §11.3) in front of the band's authenticator.

* **SELECT** ``A0000006472F0001`` answers ``U2F_V2`` when the authenticator also speaks CTAP1/U2F
  (the fixture's ``ctap.u2f``), ``FIDO_2_0`` when it is CTAP2 only (§11.3.3).
* **NFCCTAP_MSG** ``80 10 P1 00 Lc <CTAP2 request>`` (chained with CLA ``90`` or extended) runs
  :meth:`Authenticator.process_cbor` in the applet's worker thread. P1 bit ``0x80`` says the
  client understands NFCCTAP_GETRESPONSE: then, while the authenticator waits for the wearer
  (it reports UPNEEDED through its keepalive callback), the answer is status ``9100`` with one
  data byte, the keepalive status (1 PROCESSING, 2 UPNEEDED), and the client polls.
* **NFCCTAP_GETRESPONSE** ``80 11 P1 00``: the final answer once there is one, ``9100`` + status
  while there is none; P1 ``0x11`` cancels the request (the answer is then the authenticator's
  CTAP2_ERR_KEEPALIVE_CANCEL). With nothing in progress or waiting: ``6985``.
* **U2F** raw messages (CLA ``00``, INS ``01`` register, ``02`` authenticate, ``03`` version) go
  to :meth:`Authenticator.process_u2f` when the fixture has U2F, else ``6D00``.
* A new request while one is running gets ``6985``; selecting another applet, or the field going
  away, cancels the running one.
* The field going away is a power cycle of the FIDO interface (:meth:`FidoApplet.power_lost`):
  the authenticator forgets its pinUvAuthTokens, key-agreement keys, the block after three wrong
  PINs in a row and any stateful command, and its 10 s reset window opens again with the next
  field (CTAP 2.1 §6.5.5.7, §6.6). The band's own state (wrist authentication, battery) stays.

Work that finishes within ``inline_wait_s`` is answered at once; otherwise the applet returns a
future, resolved by the worker thread, so the front end's event loop is never blocked by a wait
for the wearer.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, InvalidStateError
from typing import Protocol

from nymi_device.protocol.apdu import AID_FIDO, SW, CommandApdu, ResponseApdu
from nymi_device.protocol.keepalive import KeepaliveStatus

from .card_os import Applet, Pending, reply

__all__ = ["CtapAuthenticator", "FidoApplet", "never_waits_for_wearer"]

logger = logging.getLogger(__name__)

_CTAP1_ERR_OTHER = b"\x7f"
_KEEPALIVE_PROCESSING = int(KeepaliveStatus.PROCESSING)
_KEEPALIVE_UPNEEDED = int(KeepaliveStatus.UPNEEDED)


class CtapAuthenticator(Protocol):
    """What the FIDO applet needs from the band's authenticator."""

    def process_cbor(
        self,
        request: bytes,
        *,
        cancel: threading.Event | None = None,
        keepalive: Callable[[int], None] | None = None,
    ) -> bytes: ...

    def process_u2f(self, apdu: bytes) -> bytes: ...


def _get_info_only(request: bytes) -> bool:
    return request[:1] == b"\x04"


def never_waits_for_wearer(request: bytes) -> bool:
    """For :class:`FidoApplet`'s ``inline``: every request answers without waiting."""
    return True


class _Job:
    """One CTAP2 request in the worker thread, and what it has reported so far."""

    def __init__(self, request: bytes) -> None:
        self.request = request
        self.cancel = threading.Event()
        #: Set when the result is there.
        self.done = threading.Event()
        #: Set on every change (result or status).
        self.changed = threading.Event()
        self._lock = threading.Lock()
        self.result: bytes | None = None
        self.status = _KEEPALIVE_PROCESSING
        self.delivered = False
        self._watchers: list[Callable[[], None]] = []

    @property
    def waiting_for_user(self) -> bool:
        return self.status == _KEEPALIVE_UPNEEDED

    def keepalive(self, status: int) -> None:
        """Called by the authenticator (worker thread)."""
        with self._lock:
            if self.status == status:
                return
            self.status = status
            watchers = list(self._watchers)
        self.changed.set()
        for watch in watchers:
            watch()

    def finish(self, result: bytes) -> None:
        with self._lock:
            self.result = result
            watchers = list(self._watchers)
        self.done.set()
        self.changed.set()
        for watch in watchers:
            watch()

    def watch(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` on every change from now on, and once now."""
        with self._lock:
            self._watchers.append(callback)
        callback()


class _Worker:
    """One daemon thread running CTAP2 requests in order."""

    def __init__(self, run: Callable[[_Job], bytes]) -> None:
        self._run = run
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._loop, name="fido-applet", daemon=True)
        self._thread.start()

    def submit(self, job: _Job) -> None:
        self._jobs.put(job)

    def close(self) -> None:
        self._jobs.put(None)

    def _loop(self) -> None:
        while (job := self._jobs.get()) is not None:
            try:
                result = self._run(job)
            except Exception:
                logger.exception("CTAP request failed in the FIDO applet")
                result = _CTAP1_ERR_OTHER
            job.finish(result)


class FidoApplet(Applet):
    """CTAP 2.1 §11.3 over ISO 7816-4.

    :param authenticator: the band's CTAP authenticator.
    :param u2f: whether the authenticator speaks CTAP1/U2F (SELECT then answers ``U2F_V2``).
    :param inline_wait_s: how long a command may take before the answer becomes a future.
    :param user_grace_s: how long to keep waiting once the authenticator needs the wearer,
        before answering ``9100`` (or a future).
    :param inline: requests (command byte + CBOR) for which this returns true run in the
        caller's thread instead of the worker: those that can never wait for the wearer. By
        default only authenticatorGetInfo; :func:`never_waits_for_wearer` covers models whose
        presence and UV are the band's wrist authentication (every request answers at once).
    """

    aid = AID_FIDO
    name = "fido"

    @enum.unique
    class INS(enum.IntEnum):
        NFCCTAP_MSG = 0x10
        NFCCTAP_GETRESPONSE = 0x11
        U2F_REGISTER = 0x01
        U2F_AUTHENTICATE = 0x02
        U2F_VERSION = 0x03

    CLA_CTAP = 0x80
    CLA_U2F = 0x00
    #: NFCCTAP_MSG P1: the client supports NFCCTAP_GETRESPONSE.
    P1_GETRESPONSE_SUPPORTED = 0x80
    #: NFCCTAP_GETRESPONSE P1: cancel the running request.
    P1_CANCEL = 0x11

    def __init__(
        self, authenticator: CtapAuthenticator, *, u2f: bool, inline_wait_s: float = 0.05,
        user_grace_s: float = 0.005, inline: Callable[[bytes], bool] | None = None,
    ) -> None:
        self._authenticator = authenticator
        self._inline = inline or _get_info_only
        self._u2f = u2f
        self._inline_wait_s = inline_wait_s
        self._user_grace_s = user_grace_s
        self._worker: _Worker | None = None
        self._job: _Job | None = None

    @property
    def select_response(self) -> bytes:
        return b"U2F_V2" if self._u2f else b"FIDO_2_0"

    def select(self, command: CommandApdu) -> ResponseApdu:
        self.deselect()
        return reply(SW.OK, self.select_response)

    def deselect(self) -> None:
        job, self._job = self._job, None
        if job is not None:
            job.cancel.set()

    def power_lost(self) -> None:
        self.deselect()
        lose_power = getattr(self._authenticator, "lose_power", None)
        if lose_power is not None:
            lose_power()

    def close(self) -> None:
        self.deselect()
        if self._worker is not None:
            self._worker.close()
            self._worker = None

    @property
    def busy(self) -> bool:
        """A CTAP2 request is running."""
        job = self._job
        return job is not None and job.result is None

    def process(self, command: CommandApdu) -> ResponseApdu | Pending:
        ins = command.ins
        if command.cla == self.CLA_CTAP:
            if ins == self.INS.NFCCTAP_MSG:
                return self._msg(command)
            if ins == self.INS.NFCCTAP_GETRESPONSE:
                return self._get_response(command)
            return reply(SW.INS_NOT_SUPPORTED)
        if command.cla == self.CLA_U2F:
            if not self._u2f or ins not in (self.INS.U2F_REGISTER, self.INS.U2F_AUTHENTICATE,
                                            self.INS.U2F_VERSION):
                return reply(SW.INS_NOT_SUPPORTED)
            if self.busy:
                return reply(SW.CONDITIONS_NOT_SATISFIED)
            answer = ResponseApdu.parse(self._authenticator.process_u2f(command.encode()))
            return answer
        return reply(SW.CLA_NOT_SUPPORTED)

    # -- NFCCTAP ---------------------------------------------------------------------------------

    def _msg(self, command: CommandApdu) -> ResponseApdu | Pending:
        if command.p2 or command.p1 & ~self.P1_GETRESPONSE_SUPPORTED:
            return reply(SW.WRONG_P1P2)
        if self.busy:
            return reply(SW.CONDITIONS_NOT_SATISFIED)
        request = command.data
        if self._inline(request):
            self._job = None
            try:
                result = self._authenticator.process_cbor(request)
            except Exception:
                logger.exception("CTAP request failed in the FIDO applet")
                result = _CTAP1_ERR_OTHER
            return ResponseApdu(result, SW.OK)
        status_allowed = bool(command.p1 & self.P1_GETRESPONSE_SUPPORTED)
        job = _Job(request)
        self._job = job
        if self._worker is None:
            self._worker = _Worker(self._run)
        self._worker.submit(job)
        return self._answer(job, status_allowed=status_allowed)

    def _get_response(self, command: CommandApdu) -> ResponseApdu | Pending:
        if command.p2 or command.p1 not in (0x00, self.P1_CANCEL):
            return reply(SW.WRONG_P1P2)
        if command.data:
            return reply(SW.WRONG_LENGTH)
        job = self._job
        if job is None or job.delivered:
            return reply(SW.CONDITIONS_NOT_SATISFIED)
        if command.p1 == self.P1_CANCEL:
            job.cancel.set()
            return self._answer(job, status_allowed=False)
        return self._answer(job, status_allowed=True)

    def _run(self, job: _Job) -> bytes:
        if job.cancel.is_set():
            return b"\x2d"  # CTAP2_ERR_KEEPALIVE_CANCEL: abandoned before it started
        return self._authenticator.process_cbor(
            job.request, cancel=job.cancel, keepalive=job.keepalive)

    @staticmethod
    def _ready(job: _Job, status_allowed: bool) -> ResponseApdu | None:
        """The answer to give now, if there is one (the caller marks a result delivered)."""
        result = job.result
        if result is not None:
            return reply(SW.OK, result)
        if status_allowed and job.waiting_for_user:
            return reply(SW.STATUS_UPDATE, bytes((job.status,)))
        return None

    def _answer(self, job: _Job, *, status_allowed: bool) -> ResponseApdu | Pending:
        # Wait here for a quick answer: first ``user_grace_s`` for the result alone (a worn,
        # authenticated band grants presence at once, so most requests end here), then up to
        # ``inline_wait_s`` unless the authenticator has said it needs the wearer, so a real
        # wait for the wearer never holds the caller.
        if not job.done.wait(self._user_grace_s):
            deadline = time.monotonic() + self._inline_wait_s - self._user_grace_s
            while job.result is None and not job.waiting_for_user:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                job.changed.wait(remaining)
                job.changed.clear()
        now = self._ready(job, status_allowed)
        if now is not None:
            job.delivered = now.sw == SW.OK
            return now
        future: Pending = Future()

        def check() -> None:
            if future.done():
                return
            answer = self._ready(job, status_allowed)
            if answer is None:
                return
            try:
                future.set_result(answer)
            except InvalidStateError:  # resolved by another thread meanwhile
                return
            if answer.sw == SW.OK:
                job.delivered = True

        job.watch(check)
        return future
