"""Benchmark: the band's CTAP authenticator against raw P-256 operations, side by side.

Run: ``.venv/bin/python bench/bench_ctap.py [--seconds 1.5] [--rounds 3]``

Measures, in one process on one core:

* raw ECDSA P-256/SHA-256 signing with ``cryptography`` (a loaded key, a 69-byte message, the
  size of authenticatorData + clientDataHash);
* raw key generation + one signature;
* in-process getAssertion: CBOR request bytes in -> status + signed CBOR response out, through
  :meth:`Authenticator.process_cbor`, on durable flash (sign counters persisted in blocks);
* in-process makeCredential (non-discoverable, packed attestation with the batch key);

and prints ops/s with the ratios the architecture targets (getAssertion >= 0.8x raw sign,
makeCredential >= 0.5x keygen+sign). Best of ``--rounds`` timed rounds for every row.
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from simulator.band.ctap import Authenticator, AutoWearer
from simulator.band.storage import FlashStorage
from simulator.fixtures import load_fixture

ES256 = [{"type": "public-key", "alg": -7}]


class Row:
    """One measured path: a call, and its best ops/s over the rounds run so far."""

    def __init__(self, name: str, fn: Callable[[], object]) -> None:
        self.name = name
        self.fn = fn
        self.best = 0.0
        start = time.perf_counter()
        calls = 0
        while time.perf_counter() - start < 0.05:  # warm up, and size a batch of ~5 ms
            fn()
            calls += 1
        self.batch = max(1, calls // 10)

    def run(self, seconds: float) -> None:
        fn, batch = self.fn, self.batch
        done = 0
        start = time.perf_counter()
        while True:
            for _ in range(batch):
                fn()
            done += batch
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
        self.best = max(self.best, done / elapsed)


def raw_sign() -> Callable[[], object]:
    key = ec.generate_private_key(ec.SECP256R1())
    algorithm = ec.ECDSA(hashes.SHA256())
    message = os.urandom(69)
    return lambda: key.sign(message, algorithm)


def raw_keygen_sign() -> Callable[[], object]:
    algorithm = ec.ECDSA(hashes.SHA256())
    message = os.urandom(69)
    curve = ec.SECP256R1()
    return lambda: ec.generate_private_key(curve).sign(message, algorithm)


class Band:
    """An authenticator on durable flash in a temporary directory."""

    def __init__(self, fixture_id: str, directory: Path) -> None:
        self.storage = FlashStorage.open(directory / fixture_id, durable=True)
        self.auth = Authenticator(load_fixture(fixture_id), self.storage, AutoWearer(self.storage))
        self.uv = fixture_id.startswith("nymi")

    def make_request(self, rk: bool = False) -> bytes:
        options: dict[str, bool] = {"rk": rk}
        if self.uv:
            options["uv"] = True
        params = {
            1: os.urandom(32),
            2: {"id": "example.com", "name": "Example"},
            3: {"id": os.urandom(16), "name": "alice", "displayName": "Alice"},
            4: ES256,
            7: options,
        }
        return b"\x01" + cbor2.dumps(params, canonical=True)

    def credential_id(self) -> bytes:
        response = self.auth.process_cbor(self.make_request())
        assert response[0] == 0, response[:1].hex()
        auth_data = cbor2.loads(response[1:])[2]
        length = int.from_bytes(auth_data[53:55], "big")
        return bytes(auth_data[55 : 55 + length])

    def assertion_requests(self, count: int = 512) -> list[bytes]:
        cred_id = self.credential_id()
        requests = []
        for _ in range(count):
            params: dict[int, object] = {
                1: "example.com",
                2: os.urandom(32),
                3: [{"id": cred_id, "type": "public-key"}],
            }
            if self.uv:
                params[5] = {"uv": True}
            requests.append(b"\x02" + cbor2.dumps(params, canonical=True))
        return requests


def cycle(process: Callable[[bytes], bytes], requests: list[bytes]) -> Callable[[], object]:
    """A call that sends the next request; every request is checked once to succeed first."""
    for request in requests:
        response = process(request)
        if response[0] != 0:
            raise RuntimeError(f"status 0x{response[0]:02x}")
    following = itertools.cycle(requests).__next__
    return lambda: process(following())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.5, help="length of one timed round")
    parser.add_argument("--rounds", type=int, default=3, help="timed rounds per row (best kept)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        directory = Path(tmp)
        bands = {fid: Band(fid, directory) for fid in ("nymi-band-3.0", "ctap21-reference")}
        rows = [
            Row("raw ECDSA P-256 sign (cryptography)", raw_sign()),
            Row("raw P-256 keygen + sign", raw_keygen_sign()),
        ]
        for fixture_id, band in bands.items():
            process = band.auth.process_cbor
            rows.append(
                Row(
                    f"getAssertion in-process ({fixture_id})",
                    cycle(process, band.assertion_requests()),
                )
            )
            rows.append(
                Row(
                    f"makeCredential in-process ({fixture_id})",
                    cycle(process, [band.make_request() for _ in range(256)]),
                )
            )
        # Rounds are interleaved so that a noisy neighbour hurts every row alike.
        for _ in range(args.rounds):
            for row in rows:
                row.run(args.seconds)
        rk_band = Band("nymi-band-3.0", directory / "rk")
        rk = Row(
            "makeCredential rk=true (fsync'd flash commit)",
            cycle(rk_band.auth.process_cbor, [rk_band.make_request(rk=True) for _ in range(64)]),
        )
        rk.run(min(args.seconds, 0.5))
        for band in (*bands.values(), rk_band):
            band.storage.close()
    sign, keygen_sign = rows[0].best, rows[1].best
    reserve = load_fixture("nymi-band-3.0").ctap.counter_reserve  # type: ignore[union-attr]
    print(
        f"one core, best of {args.rounds} x {args.seconds:g} s; durable flash, sign-counter "
        f"ceiling reserved {reserve} ahead"
    )
    width = max(len(row.name) for row in [*rows, rk])
    print(f"{'path':<{width}}  {'ops/s':>10}  ratio")
    print(f"{'-' * width}  {'-' * 10}  {'-' * 34}")
    for row in [*rows, rk]:
        if row.name.startswith("getAssertion"):
            ratio = f"{row.best / sign:.2f}x sign (target >= 0.80)"
        elif row.name.startswith("makeCredential in-process"):
            ratio = f"{row.best / keygen_sign:.2f}x keygen+sign (target >= 0.50)"
        elif row is rk:
            ratio = f"{row.best / keygen_sign:.2f}x keygen+sign (no target)"
        else:
            ratio = "1.00x (baseline)"
        print(f"{row.name:<{width}}  {row.best:>10,.0f}  {ratio}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
