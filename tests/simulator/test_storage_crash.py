"""A power cut at any instant: SIGKILL a band process during credential writes and Delete User Data.

Acceptance: "A test kills a band process with SIGKILL at no fewer than 200 random points during
Delete User Data and during credential writes, restarts it each time, and asserts that the band's
state is exactly the old or the new one — never a mix, never unreadable."

The band process is a child forked from this test process, working on a durable
:class:`~simulator.band.storage.FlashStorage` (real fsync). The kill instant is chosen three ways:

* ``self-kill``: the child's ``before_io`` seam SIGKILLs the child at its k-th write step, k random;
  this lands before a journal append, before a compaction, and between the secure element's key
  rotation and the journal rewrite of Delete User Data;
* ``mid-write``: the seam lets the k-th write step start and the parent kills a random few hundred
  microseconds later, in the middle of the write or the fsync;
* ``wall-clock``: the parent kills at a delay drawn uniformly over the operation's duration (which
  it measured first on a copy of the flash), counted from the child's "starting now" message.

After every kill the parent restarts the band (reopens the flash) and requires the state to be
exactly the old or the new one, the device records intact, no plaintext on the flash, a rotated
user key exactly when the user data is gone, and a store that accepts the next commit. The next
round starts from whichever state resulted. Run with ``-s`` to see where the kills landed;
``NYMI_CRASH_SEED`` replays a run.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import shutil
import signal
import statistics
import time
import traceback
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, NoReturn

from nymi_device.protocol.model import Button, EnrollmentState
from simulator.band import storage as storage_module
from simulator.band.band import EmulatedBand
from simulator.band.records import USER_KEY, Identity
from simulator.band.storage import USER_PREFIX, FlashStorage, _SecureElement
from simulator.clock import VirtualClock
from simulator.fixtures import load_fixture

FIXTURE = load_fixture("nymi-band-3.0")
SERIAL = "AAAH-00125"
SEED = int(os.environ.get("NYMI_CRASH_SEED", str(random.SystemRandom().randrange(2**32))))
# Kills that must land inside each operation (the acceptance asks for 100 + 100 >= 200).
KILLS_PER_OPERATION = 120
MAX_ROUNDS_PER_OPERATION = 600
CHILD_TIMEOUT_S = 20.0
MARKER_KEY = "user/marker"
INDEX_KEY = "user/ctap/index"

Kind = Literal["credential-write", "delete-user-data"]
Mode = Literal["self-kill", "mid-write", "wall-clock"]
State = dict[str, bytes]
# The child's messages on its pipe: R = the operation starts now; a/c/k = the write step
# journal-append / journal-compact / se-rotate starts; S = the step the parent kills in has
# started; D<seconds>; = the operation returned; E<traceback> = the child failed.
_STEP_TAGS = {"journal-append": b"a", "journal-compact": b"c", "se-rotate": b"k"}
_STEP_NAMES = {tag[0]: name for name, tag in _STEP_TAGS.items()}


# -- the operations ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Operation:
    kind: Kind
    label: str
    old: State
    new: State
    # Runs in the band process before the kill seam is armed; returns the operation itself.
    prepare: Callable[[FlashStorage], Callable[[], None]]


def _user(state: State) -> State:
    return {k: v for k, v in state.items() if k.startswith(USER_PREFIX)}


def _device(state: State) -> State:
    return {k: v for k, v in state.items() if not k.startswith(USER_PREFIX)}


def _credential_write(state: State, rng: random.Random, next_id: Callable[[], int]) -> Operation:
    """One FIDO2-style transaction on the credential records: several related keys at once."""
    ids: list[int] = json.loads(state.get(INDEX_KEY, b"[]"))
    puts: State = {}
    deletes: set[str] = set()

    def register() -> None:
        n = next_id()
        puts[f"user/ctap/cred/{n}"] = rng.randbytes(rng.randint(1500, 6000))
        puts[f"user/ctap/counter/{n}"] = b"0"
        ids.append(n)

    def remove() -> None:
        n = ids.pop(rng.randrange(len(ids)))
        for key in (f"user/ctap/cred/{n}", f"user/ctap/counter/{n}"):
            puts.pop(key, None)  # registered and removed in one transaction
            deletes.add(key)

    def sign() -> None:
        for n in rng.sample(ids, min(len(ids), rng.randint(1, 3))):
            counter = int(state.get(f"user/ctap/counter/{n}", b"0")) + 1
            puts[f"user/ctap/counter/{n}"] = b"%d" % counter
            puts["user/ctap/last-used"] = b"%d" % n

    if len(ids) < 6:
        actions = [register]
    elif len(ids) > 40:
        actions = [remove, remove, rng.choice([register, sign])]
    else:
        actions = rng.choices([register, remove, sign], weights=[4, 2, 3], k=rng.randint(1, 2))
    for action in actions:
        action()
    puts[INDEX_KEY] = json.dumps(sorted(ids)).encode()
    if MARKER_KEY not in state:
        puts[MARKER_KEY] = b"WEARER-MARKER-" + rng.randbytes(16).hex().encode()
    new = {k: v for k, v in state.items() if k not in deletes} | puts
    label = "+".join(a.__name__ for a in actions)

    def prepare(storage: FlashStorage) -> Callable[[], None]:
        def run() -> None:
            with storage.transaction() as txn:
                for key in sorted(deletes):
                    txn.delete(key)
                for key, value in puts.items():
                    txn.put(key, value)
        return run

    return Operation("credential-write", label, state, new, prepare)


def _crypto_erase(state: State) -> Operation:
    def prepare(storage: FlashStorage) -> Callable[[], None]:
        return storage.crypto_erase

    return Operation("delete-user-data", "crypto_erase()", state, _device(state), prepare)


def _band_gesture(state: State) -> Operation:
    """Delete User Data the way a wearer does it: off the wrist, on the charger, bottom 10 s."""

    def prepare(storage: FlashStorage) -> Callable[[], None]:
        band = _band(storage)
        band.attach_charger()

        def run() -> None:
            band.hold(Button.BOTTOM, FIXTURE.timing.wipe_hold_s)
            assert band.enrollment == EnrollmentState.UNENROLLED
            assert storage.keys(USER_PREFIX) == []

        return run

    return Operation("delete-user-data", "band gesture", state, _device(state), prepare)


def _band(storage: FlashStorage) -> EmulatedBand:
    return EmulatedBand.create(FIXTURE, storage, VirtualClock(), Identity.new(SERIAL, FIXTURE.id))


def _enroll_and_register(directory: Path, rng: random.Random, next_id: Callable[[], int]) -> None:
    """A new wearer: enrollment on the band (DOMAIN.md 2), then ~20 credential records."""
    with FlashStorage.open(directory, durable=True) as storage:
        band = _band(storage)
        band.put_on()
        band.enter_setup_code(band.setup_code or "")
        band.start_capture()
        for _ in range(FIXTURE.limits.enrollment_touches):
            band.place_finger(match=True)
            band.settle()
        band.set_label("tw-user2")
        band.apply_policy(band.effective_policy)
        band.settle()
        band.take_off()
        assert band.enrollment == EnrollmentState.ENROLLED and USER_KEY in storage.snapshot()
        ids = [next_id() for _ in range(rng.randint(6, 9))]
        with storage.transaction() as txn:
            for n in ids:
                txn.put(f"user/ctap/cred/{n}", rng.randbytes(rng.randint(1000, 4000)))
                txn.put(f"user/ctap/counter/{n}", b"%d" % rng.randint(0, 50))
            txn.put(INDEX_KEY, json.dumps(ids).encode())
            txn.put(MARKER_KEY, b"WEARER-MARKER-" + rng.randbytes(16).hex().encode())


# -- the band process and its kill ---------------------------------------------------------------


@dataclass(frozen=True)
class KillPlan:
    mode: Mode
    step: int = 0  # self-kill / mid-write: the k-th write step of the operation (1-based)
    delay: float = 0.0  # mid-write: after the step started; wall-clock: after the op started
    compact_after: int | None = None  # a lowered compaction threshold in the child only


def _band_process(directory: Path, op: Operation, plan: KillPlan, out: int) -> NoReturn:
    """The child: open the flash, run the operation, report; never returns into pytest."""
    try:
        if plan.compact_after is not None:
            storage_module._COMPACT_AFTER_BYTES = plan.compact_after
        armed = False
        steps = 0

        def before_io(step: str) -> None:
            nonlocal steps
            if not armed:
                return
            steps += 1
            os.write(out, _STEP_TAGS[step])
            if steps == plan.step and plan.mode == "self-kill":
                os.kill(os.getpid(), signal.SIGKILL)
            if steps == plan.step and plan.mode == "mid-write":
                os.write(out, b"S")  # the write goes ahead; the parent kills in the middle

        storage = FlashStorage.open(directory, durable=True, before_io=before_io)
        run = op.prepare(storage)
        armed = True
        os.write(out, b"R")
        started = time.perf_counter()
        run()
        os.write(out, b"D%.9f;" % (time.perf_counter() - started))
        while True:
            signal.pause()  # a band keeps running until the power goes
    except BaseException:
        with contextlib.suppress(OSError):
            os.write(out, b"E" + traceback.format_exc().encode())
    finally:
        os._exit(70)


def _read_until(fd: int, tags: bytes, pid: int) -> bytes:
    """What the child sent until one of ``tags`` arrived, an error, or end of file (it died)."""
    received = b""
    while not any(t in received for t in tags + b"E"):
        ready, _, _ = select.select([fd], [], [], CHILD_TIMEOUT_S)
        if not ready:
            os.kill(pid, signal.SIGKILL)
            raise AssertionError(f"band process hung; it sent {received!r}")
        chunk = os.read(fd, 65536)
        if not chunk:
            break
        received += chunk
    return received


def _spin(seconds: float) -> None:
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


@dataclass(frozen=True)
class Kill:
    during_op: bool  # the operation had not returned when the child died
    where: str  # the last write step that had started, or "before any write" / "after the op"
    steps: tuple[str, ...]  # every write step that started


def _kill_band_process(directory: Path, op: Operation, plan: KillPlan) -> Kill:
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read_fd)
        _band_process(directory, op, plan, write_fd)
    os.close(write_fd)
    received = b""
    try:
        if plan.mode == "wall-clock":
            received = _read_until(read_fd, b"R", pid)
            if b"R" in received:
                _spin(plan.delay)
        elif plan.mode == "mid-write":
            received = _read_until(read_fd, b"SD", pid)
            if b"S" in received:
                _spin(plan.delay)
        else:
            received = _read_until(read_fd, b"D", pid)  # end of file: it killed itself
        os.kill(pid, signal.SIGKILL)
        received += _read_until(read_fd, b"", pid)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        os.close(read_fd)
    if b"E" in received:
        raise AssertionError("band process failed:\n" + received.partition(b"E")[2].decode())
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL, status
    assert received.startswith(b"R"), received
    steps = tuple(_STEP_NAMES[c] for c in received.partition(b"D")[0] if c in _STEP_NAMES)
    if b"D" in received:
        return Kill(False, "after the op", steps)
    return Kill(True, steps[-1] if steps else "before any write", steps)


def _measure(directory: Path, op: Operation, plan: KillPlan, scratch: Path) -> float:
    """The operation's wall time, run first in this process on a copy of the flash."""
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(directory, scratch)
    saved = storage_module._COMPACT_AFTER_BYTES
    try:
        if plan.compact_after is not None:
            storage_module._COMPACT_AFTER_BYTES = plan.compact_after
        with FlashStorage.open(scratch, durable=True) as storage:
            run = op.prepare(storage)
            started = time.perf_counter()
            run()
            return time.perf_counter() - started
    finally:
        storage_module._COMPACT_AFTER_BYTES = saved
        shutil.rmtree(scratch, ignore_errors=True)


# -- the restart and its checks ------------------------------------------------------------------


def _secure_element(directory: Path) -> _SecureElement:
    se = _SecureElement.decode((directory / "se.bin").read_bytes())
    assert se is not None, "se.bin unreadable"
    return se


def _describe_mix(state: State, op: Operation) -> str:
    def names(keys: list[str]) -> str:
        return f"{len(keys)} {sorted(keys)[:6]}{' ...' if len(keys) > 6 else ''}"

    def diff(expected: State) -> str:
        missing = list(expected.keys() - state.keys())
        extra = list(state.keys() - expected.keys())
        changed = [k for k in state.keys() & expected.keys() if state[k] != expected[k]]
        return f"missing {names(missing)}, unexpected {names(extra)}, different {names(changed)}"

    return f"vs old: {diff(op.old)}; vs new: {diff(op.new)}"


def _restart_and_check(directory: Path, op: Operation, se_before: _SecureElement,
                       restarts: int, context: str) -> tuple[Literal["old", "new"], State]:
    """Restart the band on its flash; the state must be exactly the old or the new one."""
    with FlashStorage.open(directory, durable=True) as storage:  # never unreadable
        state = storage.snapshot()
        assert state in (op.old, op.new), f"{context}: a mixed state; {_describe_mix(state, op)}"
        outcome: Literal["old", "new"] = "new" if state == op.new else "old"
        assert _device(state) == _device(op.old), f"{context}: device records changed"
        if op.label == "band gesture":
            band = _band(storage)
            enrolled = outcome == "old" and USER_KEY in op.old
            assert (band.enrollment == EnrollmentState.ENROLLED) == enrolled, context
        storage.put("device/restarts", b"%d" % restarts)  # the restarted store takes commits
    state = {**state, "device/restarts": b"%d" % restarts}
    se_after = _secure_element(directory)
    assert se_after.device_key == se_before.device_key, f"{context}: device key changed"
    files = {p.name: p.read_bytes() for p in directory.iterdir() if p.is_file()}
    for value in {*op.old.values(), *op.new.values()}:
        if len(value) >= 16:
            leaks = [name for name, data in files.items() if value in data]
            assert not leaks, f"{context}: a value in plaintext in {leaks}"
    if op.kind == "delete-user-data":
        if outcome == "new":
            assert se_after.user_generation == se_before.user_generation + 1, context
            assert se_after.user_key != se_before.user_key, context
            assert not [n for n, data in files.items() if USER_PREFIX.encode() in data], (
                f"{context}: user record names survived the wipe")
        else:
            assert se_after == se_before, f"{context}: key rotated but user data still readable"
    with FlashStorage.open(directory, durable=True) as again:  # recovery was durable
        assert again.snapshot() == state, f"{context}: the restart's own commit was lost"
    return outcome, state


# -- the test ------------------------------------------------------------------------------------


@dataclass
class Tally:
    outcomes: Counter[tuple[Kind, str]] = field(default_factory=Counter)  # kills during the op
    modes: Counter[tuple[Kind, str]] = field(default_factory=Counter)
    where: Counter[tuple[Kind, str]] = field(default_factory=Counter)
    during: Counter[Kind] = field(default_factory=Counter)
    after: Counter[Kind] = field(default_factory=Counter)
    measured: dict[Kind, list[float]] = field(default_factory=lambda: {
        "credential-write": [], "delete-user-data": []})
    compactions_grown_past_default: int = 0

    def report(self) -> str:
        lines = [f"storage crash test, seed {SEED} (NYMI_CRASH_SEED to replay)"]
        for kind in ("credential-write", "delete-user-data"):
            times = self.measured[kind]
            lines.append(
                f"  {kind}: {self.during[kind]} kills during the op, the restart found "
                f"old {self.outcomes[kind, 'old']} / new {self.outcomes[kind, 'new']}; "
                f"+{self.after[kind]} kills just after it returned (all new)"
            )
            lines.append("    by mode:  " + ", ".join(
                f"{m} {n}" for (k, m), n in sorted(self.modes.items()) if k == kind))
            lines.append("    by place: " + ", ".join(
                f"{w} {n}" for (k, w), n in sorted(self.where.items()) if k == kind))
            if times:
                lines.append(f"    op wall time measured in the parent: median "
                             f"{statistics.median(times) * 1e3:.2f} ms, max "
                             f"{max(times) * 1e3:.2f} ms")
        lines.append(f"  kills in total during an op: {sum(self.during.values())}; compactions "
                     f"at the real 256 KiB threshold: {self.compactions_grown_past_default}")
        return "\n".join(lines)


def _plan(kind: Kind, rng: random.Random, journal_size: int, lower_threshold: bool) -> KillPlan:
    modes: list[Mode] = ["self-kill", "mid-write", "wall-clock"]
    mode = rng.choices(modes, weights=[4, 3, 3])[0]
    compact_after = None
    if kind == "credential-write" and lower_threshold and rng.random() < 0.4:
        compact_after = rng.randint(4096, max(4096, journal_size))  # this commit compacts
    step = rng.randint(1, 2)  # a commit is append (+ compaction); a wipe is rotation + rewrite
    return KillPlan(mode, step, rng.uniform(0.0, 0.0004), compact_after)


def _run_rounds(kind: Kind, directory: Path, tmp_path: Path, rng: random.Random, tally: Tally,
                state: State, next_id: Callable[[], int], restarts: list[int]) -> State:
    for round_ in range(MAX_ROUNDS_PER_OPERATION):
        done = tally.during[kind] >= KILLS_PER_OPERATION and all(
            tally.outcomes[kind, o] for o in ("old", "new")) and (
            kind != "credential-write" or (tally.compactions_grown_past_default > 0
                                           and tally.where[kind, "journal-compact"] >= 10))
        if done:
            return state
        if kind == "credential-write":
            op = _credential_write(state, rng, next_id)
        else:
            if not _user(state):
                _enroll_and_register(directory, rng, next_id)
                with FlashStorage.open(directory, durable=True) as storage:
                    state = storage.snapshot()
            op = rng.choice([_crypto_erase, _band_gesture])(state)
        journal_before = (directory / "journal.log").stat().st_size
        # Grow the journal past the real threshold first; then compact often, on purpose.
        plan = _plan(kind, rng, journal_before, tally.compactions_grown_past_default > 0)
        if plan.mode == "wall-clock":
            seconds = _measure(directory, op, plan, tmp_path / "measure")
            tally.measured[kind].append(seconds)
            plan = KillPlan(plan.mode, 0, rng.uniform(0.0, seconds), plan.compact_after)
        se_before = _secure_element(directory)
        kill = _kill_band_process(directory, op, plan)
        restarts[0] += 1
        context = (f"seed {SEED}, {kind} round {round_} ({op.label}), {plan}, "
                   f"killed {kill.where}")
        outcome, state = _restart_and_check(directory, op, se_before, restarts[0], context)
        if kill.during_op:
            tally.outcomes[kind, outcome] += 1
            tally.during[kind] += 1
            tally.modes[kind, plan.mode] += 1
            tally.where[kind, kill.where] += 1
        else:  # the operation had returned: what it reported done must survive
            assert outcome == "new", f"{context}: a completed operation was lost"
            tally.after[kind] += 1
        if (kind == "credential-write" and plan.compact_after is None
                and "journal-compact" in kill.steps):
            tally.compactions_grown_past_default += 1
    raise AssertionError(f"too few kills landed inside {kind}:\n{tally.report()}")


def test_band_state_survives_sigkill_at_random_points(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    directory = tmp_path / "flash"
    ids = iter(range(1, 1_000_000))
    restarts = [0]
    with FlashStorage.open(directory, durable=True) as storage:
        _band(storage)  # a new band writes its identity: the device record
        state = storage.snapshot()
    _enroll_and_register(directory, rng, lambda: next(ids))
    with FlashStorage.open(directory, durable=True) as storage:
        state = storage.snapshot()
    tally = Tally()
    started = time.perf_counter()
    state = _run_rounds("credential-write", directory, tmp_path, rng, tally, state,
                        lambda: next(ids), restarts)
    state = _run_rounds("delete-user-data", directory, tmp_path, rng, tally, state,
                        lambda: next(ids), restarts)
    elapsed = time.perf_counter() - started
    print("\n" + tally.report() + f"\n  wall time of the kill rounds: {elapsed:.2f} s")

    assert sum(tally.during.values()) >= 200
    for kind in ("credential-write", "delete-user-data"):
        assert tally.during[kind] >= 100, tally.report()
        assert tally.outcomes[kind, "old"] and tally.outcomes[kind, "new"], tally.report()
        assert {m for (k, m) in tally.modes if k == kind} == {
            "self-kill", "mid-write", "wall-clock"}, tally.report()
    assert tally.where["credential-write", "journal-compact"] >= 10, tally.report()
    assert tally.where["delete-user-data", "se-rotate"] > 0, tally.report()
    assert tally.where["delete-user-data", "journal-compact"] > 0, tally.report()
    assert tally.compactions_grown_past_default > 0, tally.report()


def test_crypto_erase_wall_time_with_20_user_records(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    timings = []
    for attempt in range(5):
        with FlashStorage.open(tmp_path / f"flash-{attempt}", durable=True) as storage:
            _band(storage)
            with storage.transaction() as txn:
                for n in range(20):
                    txn.put(f"user/ctap/cred/{n}", rng.randbytes(2048))
            assert len(storage.keys(USER_PREFIX)) == 20
            started = time.perf_counter()
            storage.crypto_erase()
            timings.append(time.perf_counter() - started)
            assert storage.keys(USER_PREFIX) == []
    print(f"\ncrypto_erase() with 20 user records, durable: median "
          f"{statistics.median(timings) * 1e3:.2f} ms, max {max(timings) * 1e3:.2f} ms")
    assert max(timings) < 1.0
