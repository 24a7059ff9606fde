"""What one simulated user does: its own band, its own account, the flows over HTTP.

Kept apart from Locust (which patches the standard library when imported) so that the same
steps run under Locust, in a benchmark or in a test. Every flow call is here, in one place.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: Environment of a load run (set by ``nymi-sim load`` for its Locust processes).
DIR_ENV = "NYMI_LOAD_DIR"  # scratch directory: each process's fleet, the ledger
PASSWORD_ENV = "NYMI_LOAD_PASSWORD"  # noqa: S105 - the variable's name
ACCOUNT_PREFIX = "load"
DEFAULT_PASSWORD = "Load-Passw0rd!"  # noqa: S105 - simulated directory users only
RP_ID = "portal.example.com"

_counter = itertools.count()


def account_name(worker: int, index: int) -> str:
    """The directory account of the ``index``-th user of process ``worker``."""
    return f"{ACCOUNT_PREFIX}-w{worker:02d}-u{index:04d}"


def band_serial(worker: int, index: int) -> str:
    """A serial no other process of the run uses: AAAA-00000 with the worker in the letters."""
    letters = "LD" + chr(ord("A") + worker // 26 % 26) + chr(ord("A") + worker % 26)
    return f"{letters}-{index:05d}"


def _quiet(title: str, detail: dict[str, Any]) -> None:
    return None


@dataclass
class LoadUser:
    """One simulated user with its band; each step returns after the server recorded it."""

    url: str
    worker: int
    root: Path
    password: str = DEFAULT_PASSWORD
    index: int = field(default_factory=lambda: next(_counter))
    enrolled: bool = False

    def __post_init__(self) -> None:
        from hosttools.remote_nes import RemoteNes
        from simulator.fleet import Fleet

        self.account = account_name(self.worker, self.index)
        self.serial = band_serial(self.worker, self.index)
        fleet_dir = self.root / f"fleet-{self.worker:02d}"
        Fleet(fleet_dir).add_band("nymi-band-3.0", self.serial)
        self.fleet_dir = fleet_dir
        self.remote = RemoteNes(self.url)
        self.nes = self.remote
        self.ledger = self.root / f"ledger-{os.getpid()}.jsonl"

    def open_band(self) -> Any:
        """The user's band, held for one flow."""
        from hosttools.site import open_flow_band

        return open_flow_band(f"sim:{self.serial}", sim_dir=self.fleet_dir)

    def run_step(self, kind: str, step: Callable[[], None]) -> tuple[float, BaseException | None]:
        """Run one flow; append what it did, how long it took and whether it succeeded to this
        process's ledger (one JSON line, written after the server answered)."""
        at = time.time()
        elapsed, error = timed(step)
        with open(self.ledger, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({"kind": kind, "serial": self.serial, "account": self.account,
                                     "ms": elapsed, "at": at, "ok": error is None,
                                     "error": None if error is None else str(error)[:200]})
                         + "\n")
        return elapsed, error

    def enroll(self) -> None:
        """First enrollment of the band to the user's account."""
        from hosttools.flows.enroll import enroll

        with self.open_band() as band:
            enroll(band, self.nes, self.account, self.password, _quiet)
        self.enrolled = True

    def reenroll(self) -> None:
        """Self-service re-enrollment: Delete User Data on the band, enroll it again."""
        from hosttools.flows.enroll import reenroll

        with self.open_band() as band:
            reenroll(band, self.nes, self.account, self.password, _quiet)

    def create_key(self) -> None:
        from hosttools.flows.fido2_keys import create_key

        with self.open_band() as band:
            create_key(band, self.nes, self.account, RP_ID, _quiet)

    def sign_in_with_key(self) -> None:
        from hosttools.flows.fido2_keys import verify_key

        with self.open_band() as band:
            verify_key(band, self.nes, self.account, RP_ID, _quiet)

    def steps(self) -> list[tuple[str, Callable[[], None]]]:
        """The next round: enroll (or re-enroll), then a FIDO2 key created and used."""
        first = ("enroll", self.enroll) if not self.enrolled else ("reenroll", self.reenroll)
        return [first, ("fido2 create", self.create_key), ("fido2 sign-in",
                                                           self.sign_in_with_key)]

    def close(self) -> None:
        self.remote.close()


def timed(step: Callable[[], None]) -> tuple[float, BaseException | None]:
    """Milliseconds a step took, and what it raised."""
    started = time.perf_counter()
    try:
        step()
    except Exception as exc:
        return (time.perf_counter() - started) * 1e3, exc
    return (time.perf_counter() - started) * 1e3, None


def read_ledger(root: Path) -> list[dict[str, Any]]:
    rows = []
    for path in sorted(root.glob("ledger-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line]
    return rows
