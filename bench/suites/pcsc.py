"""APDU round trips through pcscd + vpcd, a trivial card against the band's FIDO applet.

Starts pcscd when it is not running (as root; stops only the one it started) and holds
``/tmp/nymi-pcscd.lock`` while it uses the reader. The cards run in child processes, each behind
the vpcd front end on its own slot, so host and card do not share a Python interpreter; the host
side is pyscard in this process. Rounds interleaved, best round kept:

* trivial card (answers ``9000`` at once), 64-byte command: the transport's own rate;
* trivial card with getAssertion-sized traffic (the same command and answer sizes as below);
* FIDO getAssertion, raw: the NFCCTAP_MSG APDU (short, P1 ``80``) sent with pyscard, answered
  by the band's card OS and authenticator (``nymi-band-3.0``, worn and authenticated, durable
  flash);
* FIDO getAssertion through python-fido2 (``Ctap2`` over ``CtapPcscDevice``);
* the card OS alone, in-process (no transport), for reference.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import cbor2

from bench import pyspy
from bench.core import Context, Figure, Suite, Target, Values
from nymi_device.protocol.apdu import contactless_atr

ROOT = Path(__file__).resolve().parent.parent.parent
LOCK = Path("/tmp/nymi-pcscd.lock")
SERIAL = "BNCH-00001"
FIXTURE = "nymi-band-3.0"
SIZED_ANSWER = 203  # status byte + CBOR of a getAssertion answer with one allowed credential
#: The architecture's anchor: a 64-byte APDU round trip with a trivial card, acknowledged promptly.
ANCHOR_TRIVIAL_RATE = 7400.0


class TrivialCard:
    """A card that answers at once: ``9000``, or (INS ``02``) a getAssertion-sized answer."""

    def __init__(self) -> None:
        self.atr = contactless_atr(b"")
        self._sized = os.urandom(SIZED_ANSWER) + b"\x90\x00"

    def power_on(self) -> None: ...

    def power_off(self) -> None: ...

    def reset(self) -> None: ...

    def submit(self, apdu: bytes) -> bytes | Future[bytes]:
        return self._sized if apdu[1:2] == b"\x02" else b"\x90\x00"


# -- the card side (child processes) --------------------------------------------------------------

def serve(kind: str, slot: int, sim_dir: Path) -> None:
    """Put one card on ``slot``; print READY; keep it there until stdin closes."""
    from simulator.frontends.vpcd import VpcdFrontend

    async def run(card: object) -> None:
        frontend = VpcdFrontend(card, slot=slot)  # type: ignore[arg-type]
        await frontend.tap()
        print("READY", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)
        await frontend.untap()

    if kind == "trivial":
        asyncio.run(run(TrivialCard()))
        return
    from simulator.band.nfc import build_card_os
    from simulator.fleet import Fleet
    from simulator.serve import live_band

    with live_band(Fleet(sim_dir), SERIAL, auto_presence=False) as live:
        card = build_card_os(live.band, live.authenticator)
        asyncio.run(run(card))
        card.close()


class Child:
    def __init__(self, kind: str, slot: int, sim_dir: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.suites.pcsc", "--serve", kind, "--slot", str(slot),
             "--sim-dir", str(sim_dir)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert self.process.stdout is not None
        line = self.process.stdout.readline().strip()
        if line != "READY":
            self.process.kill()
            raise RuntimeError(f"card process for {kind} did not start ({line!r})")

    def stop(self) -> None:
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(10)


# -- the host side ---------------------------------------------------------------------------

def rate(fn: Callable[[], object], seconds: float) -> float:
    for _ in range(50):
        fn()
    done = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(100):
            fn()
        done += 100
    return done / elapsed


def in_process_rate(seconds: float) -> float:
    """getAssertion through the card OS alone (no transport), same APDU."""
    from simulator.band.nfc import build_card_os
    from simulator.fleet import Fleet
    from simulator.serve import live_band, make_ready

    with tempfile.TemporaryDirectory() as tmp:
        fleet = Fleet(Path(tmp))
        fleet.add_band(FIXTURE, SERIAL)
        with fleet.open_band(SERIAL) as band:
            make_ready(band)
        with live_band(fleet, SERIAL, auto_presence=False) as live:
            card = build_card_os(live.band, live.authenticator)
            card.transmit(bytes.fromhex("00A4040008A0000006472F000100"))
            made = cbor2.loads(card.transmit(make_credential_apdu())[1:-2])
            apdu = get_assertion_apdu(credential_id(made[2]))
            result = rate(lambda: card.transmit(apdu), seconds)
            card.close()
    return result


def make_credential_apdu() -> bytes:
    request = b"\x01" + cbor2.dumps({1: os.urandom(32), 2: {"id": "example.com"},
                                     3: {"id": b"bench"}, 4: [{"type": "public-key", "alg": -7}],
                                     7: {"uv": True}}, canonical=True)
    return bytes((0x80, 0x10, 0x80, 0x00, 0x00)) + len(request).to_bytes(2, "big") + request + (
        b"\x00\x00")


def credential_id(auth_data: bytes) -> bytes:
    length = int.from_bytes(auth_data[53:55], "big")
    return auth_data[55:55 + length]


def get_assertion_apdu(cred_id: bytes) -> bytes:
    request = b"\x02" + cbor2.dumps({1: "example.com", 2: os.urandom(32),
                                     3: [{"type": "public-key", "id": cred_id}]}, canonical=True)
    return bytes((0x80, 0x10, 0x80, 0x00, len(request))) + request + b"\x00"


@contextlib.contextmanager
def _reader_lock() -> Iterator[None]:
    """The one system pcscd is shared: hold its lock while the readers are ours."""
    with open(LOCK, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def measure(ctx: Context) -> Values:
    seconds = ctx.pick(0.1, 0.4)
    rounds = int(ctx.pick(1, 5))
    with _reader_lock():
        values = _over_pcsc(ctx, seconds, rounds)
    values["in_process"] = max(in_process_rate(seconds) for _ in range(rounds))
    values["anchor"] = ANCHOR_TRIVIAL_RATE
    return values


def _over_pcsc(ctx: Context, seconds: float, rounds: int) -> Values:
    from fido2.ctap2.base import Ctap2
    from fido2.pcsc import CtapPcscDevice
    from smartcard.pcsc.PCSCReader import PCSCReader

    from nymi_device.transport.pcsc import TracingConnection, wait_for_card
    from simulator.fleet import Fleet
    from simulator.frontends.vpcd import vpcd_reader_name
    from simulator.pcscd import ensure_pcscd
    from simulator.serve import make_ready

    rows: dict[str, float] = {}
    with ensure_pcscd():
        sim_dir = Path(tempfile.mkdtemp(dir=ctx.scratch))
        fleet = Fleet(sim_dir)
        fleet.add_band(FIXTURE, SERIAL)
        with fleet.open_band(SERIAL) as band:
            make_ready(band)
        trivial = Child("trivial", 0, sim_dir)
        band_child = Child("band", 1, sim_dir)
        try:
            readers = [vpcd_reader_name(0), vpcd_reader_name(1)]
            for name in readers:
                wait_for_card(name, timeout=5)
            plain = PCSCReader(readers[0]).createConnection()
            plain.connect()
            fido = PCSCReader(readers[1]).createConnection()
            fido.connect()
            device = CtapPcscDevice(TracingConnection(
                PCSCReader(readers[1]).createConnection(), readers[1]), readers[1])
            ctap2 = Ctap2(device)
            made = ctap2.make_credential(os.urandom(32), {"id": "example.com"},
                                         {"id": b"bench"}, [{"type": "public-key", "alg": -7}],
                                         options={"uv": True})
            assert made.auth_data.credential_data is not None
            cred = made.auth_data.credential_data.credential_id
            allow: list[Mapping[str, Any]] = [{"type": "public-key", "id": cred}]
            assertion = list(get_assertion_apdu(cred))
            data, sw1, sw2 = fido.transmit(assertion)
            assert (sw1, sw2) == (0x90, 0x00) and data[0] == 0, (hex(sw1), hex(sw2))
            short = [0x80, 0x01, 0x00, 0x00, 59] + [0] * 59
            sized = [0x80, 0x02, 0x00, 0x00, len(assertion) - 6] + [0] * (len(assertion) - 6)
            sized.append(0)
            measures: dict[str, Callable[[], object]] = {
                "trivial": lambda: plain.transmit(short),
                "trivial_sized": lambda: plain.transmit(sized),
                "fido_raw": lambda: fido.transmit(assertion),
                "fido_ctap2": lambda: ctap2.get_assertion("example.com", os.urandom(32), allow),
            }
            for _ in range(rounds):
                for label, fn in measures.items():
                    rows[label] = max(rows.get(label, 0.0), rate(fn, seconds))
            if not ctx.quick and pyspy.available():
                ctx.profiles[PROFILE] = _profile(rows, band_child.process.pid,
                                                 lambda: fido.transmit(assertion))
            for connection in (plain, fido):
                connection.disconnect()
                connection.release()
            device.close()
        finally:
            trivial.stop()
            band_child.stop()
    return rows


PROFILE = "FIDO over PC/SC against the trivial-card anchor"


_PARTS = (  # (part, frame names that put a sample in it), first match wins
    ("the authenticator (`process_cbor`, signature included)", ("Authenticator.process_cbor",)),
    ("socket reads and writes, re-arming TCP_QUICKACK", (
        "_SelectorSocketTransport", "StreamWriter.write", "setsockopt", "_QuickAckProtocol")),
    ("card OS, FIDO applet and vpcd framing", ("CardOS", "FidoApplet", "VpcdFrontend",
                                               "CommandApdu", "ResponseApdu")),
)
_IDLE = "EpollSelector.select"


def _profile(rows: Values, pid: int, call: Callable[[], object]) -> str:
    """py-spy on the band's card process while getAssertion APDUs run back to back: the card's
    own time per round trip by part, and the time it waits for the next APDU (the rest of the
    path: pyscard, pcscd, the vpcd driver and the kernel's loopback)."""
    calls = 0
    with pyspy.Attached(pid, 2.0) as spy:
        started = time.perf_counter()
        while time.perf_counter() - started < 2.6:  # covers py-spy's start and its window
            call()
            calls += 1
        each = (time.perf_counter() - started) / calls * 1e6
    parts = dict.fromkeys([name for name, _frames in _PARTS] + ["other", "idle"], 0)
    for frames, count in spy.stacks:
        if frames[0].startswith("Thread._bootstrap"):
            continue  # the card's other threads (a worker, the stdin watch) wait
        if frames[-1].startswith(_IDLE + " "):
            parts["idle"] += count
            continue
        text = ";".join(frames)
        part = next((name for name, marks in _PARTS if any(m in text for m in marks)), "other")
        parts[part] += count
    total = sum(parts.values()) or 1
    trivial = 1e6 / rows["trivial_sized"]
    budget = 1e6 / (0.8 * ANCHOR_TRIVIAL_RATE)
    table = ["| part of one getAssertion round trip | µs | share |", "|---|---:|---:|"]
    for name, count in parts.items():
        label = ("waiting for the next APDU: pyscard, pcscd, the vpcd driver, loopback TCP"
                 if name == "idle" else f"card process: {name}")
        table.append(f"| {label} | {count / total * each:.0f} | {count / total:.0%} |")
    table.append(f"| total, as measured while sampled | {each:.0f} | 100% |")
    verdict = ("already beyond that budget before the card does any work"
               if trivial > budget else
               f"{trivial / budget:.0%} of that budget before the card does any work")
    return (
        "py-spy sampled the band's card process (its main thread) from outside for 2 s while "
        f"getAssertion APDUs ran back to back ({total} samples; sampling pauses the process, "
        "so the round trip is slower than unsampled; the shares are what matter). The 0.8× "
        f"target against the architecture's 7,400/s anchor is a round trip of {budget:.0f} µs; "
        f"on this machine a trivial card's round trip at the same sizes is {trivial:.0f} µs "
        f"(the 64-byte one runs at {rows['trivial'] / ANCHOR_TRIVIAL_RATE:.2f}× the anchor), "
        f"{verdict}. Against our own trivial card in the same run the FIDO round trip runs at "
        f"{rows['fido_raw'] / rows['trivial_sized']:.2f}×.\n\n" + "\n".join(table))


SUITE = Suite(
    name="pcsc",
    title="FIDO2 over PC/SC: pcscd + vsmartcard vpcd",
    measure=measure,
    figures=[
        Figure("trivial", "trivial card, 64-byte command -> 9000", "round trips/s",
               reference="anchor"),
        Figure("trivial_sized", f"trivial card, 143-byte command -> {SIZED_ANSWER} bytes + 9000",
               "round trips/s", reference="trivial"),
        Figure("fido_raw", "FIDO getAssertion, raw NFCCTAP_MSG APDU (nymi-band-3.0)",
               "round trips/s", reference="trivial"),
        Figure("fido_raw", "the same against the architecture's 7,400/s trivial-card anchor",
               "round trips/s", reference="anchor", target=Target(">=", 0.8)),
        Figure("fido_ctap2", "FIDO getAssertion via python-fido2 `Ctap2`", "round trips/s",
               reference="trivial"),
        Figure("in_process", "card OS alone, getAssertion in-process (no transport)",
               "round trips/s", reference="trivial"),
    ],
    prose="""
pcscd with the vpcd reader; each card in a child process; best of 5 interleaved 0.4 s rounds
per run. The vpcd driver writes a command's length and body separately; answering each with one
write and `TCP_NODELAY` alone still stalls on delayed ACKs (~20 APDU/s); re-arming
`TCP_QUICKACK` after every receive removes the stall. The architecture's anchor is a trivial
card at 7,400 round trips/s; on this machine our own trivial card (which does nothing) reaches
the ratio to the anchor shown in the first row, and FIDO over PC/SC misses the 0.8× target
against the anchor because the PC/SC path alone takes most of the budget: see the profile at the
end of this page. Presence on Nymi fixtures never waits, so their requests run in the caller's
thread (a thread hand-off costs 50–70 µs here); the reference fixture's wait for a button runs
in a worker thread, answering 9100 meanwhile.
""",
)


def main() -> None:
    parser = argparse.ArgumentParser(description="a card for the PC/SC benchmark (child process)")
    parser.add_argument("--serve", required=True)
    parser.add_argument("--slot", type=int, default=0)
    parser.add_argument("--sim-dir", type=Path, required=True)
    args = parser.parse_args()
    serve(args.serve, args.slot, args.sim_dir)


if __name__ == "__main__":
    main()
