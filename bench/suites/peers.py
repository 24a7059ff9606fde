"""Peers side by side: a registration + authentication done in-process by our authenticator, by
soft-webauthn (a pure-Python software authenticator), and by raw OpenSSL operations.

One pair is: build the client data (JSON, SHA-256), create a P-256 credential answering a
registration, then answer an authentication with it. Ours is ``process_cbor`` makeCredential +
getAssertion on the ``ctap21-reference`` fixture (CBOR in and out, packed attestation with the
batch key, durable flash); soft-webauthn's ``create`` + ``get`` return dicts and attest with
"none" (one signature less). Raw is key generation + two ECDSA signatures with ``cryptography``.
soft-webauthn needs python-fido2 < 2, so it runs in its own virtual environment, created on
first use under ``~/.cache/nymi-bench`` (``$NYMI_BENCH_CACHE``); its raw reference is measured in
that process too.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from bench.core import Context, Figure, Suite, Values

CACHE = Path(os.environ.get("NYMI_BENCH_CACHE", Path.home() / ".cache" / "nymi-bench"))
VENV = CACHE / "soft-webauthn"
ORIGIN = "https://example.com"

CHILD = r"""
import json, os, sys, time
from soft_webauthn import SoftWebauthnDevice
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

def rate(fn, seconds):
    fn(); n = 0; t = time.perf_counter()
    while time.perf_counter() - t < seconds:
        fn(); n += 1
    return n / (time.perf_counter() - t)

def pair():
    dev = SoftWebauthnDevice()
    dev.create({"publicKey": {"rp": {"id": "example.com", "name": "Example"},
                "user": {"id": b"alice", "name": "alice", "displayName": "Alice"},
                "challenge": os.urandom(32),
                "pubKeyCredParams": [{"type": "public-key", "alg": -7}]}}, "https://example.com")
    dev.get({"publicKey": {"rpId": "example.com", "challenge": os.urandom(32)}},
            "https://example.com")

alg = ec.ECDSA(hashes.SHA256()); msg = os.urandom(69)
def raw():
    key = ec.generate_private_key(ec.SECP256R1()); key.sign(msg, alg); key.sign(msg, alg)

seconds = float(sys.argv[1]); best = {"soft": 0.0, "raw": 0.0}
for _ in range(3):
    best["soft"] = max(best["soft"], rate(pair, seconds))
    best["raw"] = max(best["raw"], rate(raw, seconds))
print(json.dumps(best))
"""


def soft_webauthn_python() -> Path:
    """The venv's interpreter, created (python-fido2 < 2 and soft-webauthn) on first use."""
    python = VENV / "bin" / "python"
    if not (VENV / ".ready").exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check",
                        "soft-webauthn==0.1.4", "fido2<2", "cryptography"], check=True)
        (VENV / ".ready").touch()
    return python


def _rate(fn: Callable[[], object], seconds: float) -> float:
    fn()
    count, started = 0, time.perf_counter()
    while time.perf_counter() - started < seconds:
        fn()
        count += 1
    return count / (time.perf_counter() - started)


def _ours(directory: Path) -> Callable[[], None]:
    from simulator.band.ctap import Authenticator, AutoWearer
    from simulator.band.storage import FlashStorage
    from simulator.fixtures import load_fixture

    storage = FlashStorage.open(directory / "flash", durable=True)
    auth = Authenticator(load_fixture("ctap21-reference"), storage, AutoWearer(storage))

    def client_data_hash(kind: str) -> bytes:
        return hashlib.sha256(json.dumps({"type": kind, "challenge": os.urandom(32).hex(),
                                          "origin": ORIGIN}).encode()).digest()

    def pair() -> None:
        made = auth.process_cbor(b"\x01" + cbor2.dumps({
            1: client_data_hash("webauthn.create"), 2: {"id": "example.com", "name": "Example"},
            3: {"id": b"alice", "name": "alice", "displayName": "Alice"},
            4: [{"type": "public-key", "alg": -7}]}, canonical=True))
        auth_data = cbor2.loads(made[1:])[2]
        length = int.from_bytes(auth_data[53:55], "big")
        cred = bytes(auth_data[55:55 + length])
        got = auth.process_cbor(b"\x02" + cbor2.dumps({
            1: "example.com", 2: client_data_hash("webauthn.get"),
            3: [{"type": "public-key", "id": cred}]}, canonical=True))
        assert got[0] == 0

    return pair


def measure(ctx: Context) -> Values:
    seconds = ctx.pick(0.2, 0.8)
    pair = _ours(Path(tempfile.mkdtemp(dir=ctx.scratch)))
    algorithm, message = ec.ECDSA(hashes.SHA256()), os.urandom(69)

    def raw() -> None:
        key = ec.generate_private_key(ec.SECP256R1())
        key.sign(message, algorithm)
        key.sign(message, algorithm)

    values: Values = {"ours": 0.0, "raw": 0.0}
    for _ in range(int(ctx.pick(1, 3))):
        values["ours"] = max(values["ours"], _rate(pair, seconds))
        values["raw"] = max(values["raw"], _rate(raw, seconds))
    try:
        out = subprocess.run([str(soft_webauthn_python()), "-c", CHILD, str(seconds)],
                             capture_output=True, text=True, check=True, timeout=120).stdout
        child = json.loads(out.strip().splitlines()[-1])
        values["soft"], values["soft_raw"] = child["soft"], child["raw"]
        values["ours_vs_soft"] = values["ours"]
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as exc:
        ctx.notes["peers"] = f"soft-webauthn was not measured: {exc}"
    return values


SUITE = Suite(
    name="peers",
    title="Peers: registration + authentication in-process",
    measure=measure,
    figures=[
        Figure("raw", "raw OpenSSL: P-256 keygen + 2 signatures (baseline)", "pairs/s"),
        Figure("ours", "our authenticator: makeCredential + getAssertion, CBOR", "pairs/s",
               reference="raw"),
        Figure("soft_raw", "raw OpenSSL in soft-webauthn's process (its baseline)", "pairs/s"),
        Figure("soft", "soft-webauthn: create + get", "pairs/s", reference="soft_raw"),
        Figure("ours_vs_soft", "ours against soft-webauthn", "pairs/s", reference="soft"),
    ],
    prose=(__doc__.split("\n\n", 1)[1] if __doc__ else "") + """
Ours is far below soft-webauthn here although each half alone is fast (the ctap suite:
makeCredential about 15-17k/s, getAssertion on a known credential about 40k/s): a pair on a
fresh credential waits for a durable flash commit (fsync) that a repeated assertion on a known
credential does not. soft-webauthn keeps its one credential in memory and writes nothing.
""",
)
