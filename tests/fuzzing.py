"""The fuzz targets: every parser that takes bytes from outside the band, in one registry.

The test suite runs each target with a fixed budget of examples (``tests/test_fuzz_targets.py``);
``scripts/fuzz_campaign.py`` runs the same targets for minutes. A target builds what it feeds
(a band, an authenticator, a card OS) once, then checks one generated input at a time: the
parser answers as its specification says (a status code, a status word, a spec error, a refusal)
and never raises anything else, and nothing an input may not change (the band's flash, its
state) changes.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cbor2
from hypothesis import strategies as st

#: Builds a target's world in a directory and yields the check of one input.
Setup = Callable[[Path], contextlib.AbstractContextManager[Callable[[Any], None]]]


@dataclass(frozen=True)
class FuzzTarget:
    name: str
    #: What is parsed, in the words of its specification.
    parser: str
    strategy: st.SearchStrategy[Any]
    setup: Setup
    #: Examples per run in the test suite (the campaign runs for a time instead).
    suite_examples: int = 150


# -- CTAP2 CBOR (CTAP 2.1 §8) ----------------------------------------------------------------------

_cbor_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**64), 2**64 - 1) | st.binary(max_size=70)
    | st.text(max_size=20)
    | st.sampled_from(["public-key", "id", "type", "alg", "uv", "up", "rk", "hmac-secret"]),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(
        st.integers(-3, 12) | st.sampled_from(["id", "type", "alg", "name"]), children,
        max_size=5),
    max_leaves=12,
)
_ctap_requests = st.binary(max_size=300) | st.builds(
    lambda command, params: bytes((command,)) + cbor2.dumps(params),
    st.sampled_from([0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x40]),
    st.dictionaries(st.integers(0, 12), _cbor_values, max_size=6))


@contextlib.contextmanager
def _ctap_cbor(root: Path) -> Iterator[Callable[[bytes], None]]:
    from fido2 import cbor as fido_cbor
    from fido2.ctap import CtapError

    from tests.simulator.ctap.conftest import NYMI, open_band

    known = {int(code) for code in CtapError.ERR} - {int(CtapError.ERR.OTHER)}
    band = open_band(root / "ctap", NYMI)
    band.ctap2.make_credential(bytes(32), {"id": "a.example"}, {"id": b"u"},
                               [{"type": "public-key", "alg": -7}],
                               options={"rk": True, "uv": True})
    band.clock.advance(60)  # outside the reset window: no input may erase anything

    def check(request: bytes) -> None:
        before = band.storage.snapshot()
        response = band.auth.process_cbor(request)
        assert response and response[0] in known, f"status {response[:1].hex()}"
        if response[0] == 0 and len(response) > 1:
            assert isinstance(fido_cbor.decode(response[1:]), dict)
        elif response[0] != 0:
            assert len(response) == 1
        assert band.storage.snapshot() == before

    try:
        yield check
    finally:
        band.storage.close()


# -- CTAPHID (CTAP 2.1 §11.2) ---------------------------------------------------------------------

_hid_reports = st.lists(
    st.binary(min_size=0, max_size=80) | st.builds(
        lambda cid, cmd, length, rest: (cid.to_bytes(4, "big") + bytes((cmd,))
                                        + length.to_bytes(2, "big") + rest).ljust(64, b"\0"),
        st.sampled_from([0xFFFFFFFF, 0, 0x11223344]) | st.integers(0, 2**32 - 1),
        st.sampled_from([0x81, 0x83, 0x86, 0x90, 0x91, 0xBF]) | st.integers(0, 255),
        st.integers(0, 8000), st.binary(max_size=57)),
    min_size=1, max_size=20)


@contextlib.contextmanager
def _ctaphid(root: Path) -> Iterator[Callable[[list[bytes]], None]]:
    from nymi_device.protocol.ctaphid import Capability
    from simulator.frontends.ctaphid import Cancel, CtapHidChannels, Dispatch, Reply

    def check(reports: list[bytes]) -> None:
        channels = CtapHidChannels(capabilities=Capability.CBOR | Capability.WINK)
        for at, report in enumerate(reports):
            for action in channels.receive(report, at * 0.1):
                assert isinstance(action, Reply | Dispatch | Cancel)
                if isinstance(action, Dispatch):
                    assert len(action.payload) <= channels.max_msg_size

    yield check


# -- ISO 7816-4 APDUs -------------------------------------------------------------------------------


@contextlib.contextmanager
def _apdu(root: Path) -> Iterator[Callable[[bytes], None]]:
    from nymi_device.protocol.apdu import ApduFormatError, CommandApdu

    def check(raw: bytes) -> None:
        try:
            command = CommandApdu.parse(raw)
        except ApduFormatError:
            return
        assert command.encode() == raw

    yield check


# -- the band's card OS over NFC --------------------------------------------------------------------


@st.composite
def _near_apdu(draw: st.DrawFn) -> bytes:
    from nymi_device.protocol.apdu import AID_FIDO, AID_NYMI_SECURE_NFC, AID_SEOS, CommandApdu

    cla = draw(st.sampled_from([0x00, 0x10, 0x80, 0x90, 0xFF]) | st.integers(0, 255))
    ins = draw(st.sampled_from([0xA4, 0xC0, 0xCA, 0x10, 0x11, 0x01, 0x02, 0x03, 0x87])
               | st.integers(0, 255))
    p1, p2 = draw(st.integers(0, 255)), draw(st.integers(0, 255))
    data = draw(st.sampled_from([AID_FIDO, AID_SEOS, AID_NYMI_SECURE_NFC])
                | st.binary(max_size=300))
    le = draw(st.none() | st.integers(1, 65536))
    try:
        return CommandApdu(cla, ins, p1, p2, data, le, draw(st.booleans())).encode()
    except ValueError:
        return bytes((cla, ins, p1, p2))


@contextlib.contextmanager
def _card_os(root: Path) -> Iterator[Callable[[list[bytes]], None]]:
    from simulator.band.ctap.authenticator import Authenticator
    from simulator.band.nfc import build_card_os
    from simulator.fixtures import load_fixture
    from tests.simulator.band_helpers import enroll, make_band
    from tests.simulator.nfc.conftest import RefusingWearer

    fixture = load_fixture("nymi-band-3.0-seos")
    band = make_band(fixture, root)
    enroll(band)
    band.take_off()
    band.settle()
    band.put_on()  # worn, not authenticated: nothing may change the flash
    band.settle()
    card = build_card_os(band, Authenticator(fixture, band.storage, RefusingWearer()))

    def check(apdus: list[bytes]) -> None:
        before = band.storage.snapshot()
        card.power_on()
        for raw in apdus:
            answer = card.transmit(raw)
            assert isinstance(answer, bytes) and len(answer) >= 2
            assert answer[-2:] != b"\x6f\x00", f"internal failure on {raw.hex()}"
        assert band.storage.snapshot() == before

    try:
        yield check
    finally:
        card.close()
        band.storage.close()


# -- the band management protocol's frames over BLE ------------------------------------------------


@contextlib.contextmanager
def _management(root: Path) -> Iterator[Callable[[list[bytes]], None]]:
    from simulator.band.management_server import ManagementServer
    from simulator.fixtures import load_fixture
    from tests.simulator.band_helpers import make_band
    from tests.simulator.management_helpers import responses

    band = make_band(load_fixture("nymi-band-3.0"), root)
    server = ManagementServer.for_band(band)

    def state() -> tuple[object, ...]:
        return (band.status(), len(band.events), band.user, band.storage.snapshot())

    before = state()

    def check(fragments: list[bytes]) -> None:
        server.disconnect()
        for fragment in fragments:
            responses(server.receive(fragment))
        assert state() == before

    try:
        yield check
    finally:
        band.storage.close()


def _management_fragments() -> st.SearchStrategy[list[bytes]]:
    from tests.simulator.management_helpers import arbitrary_fragments

    return arbitrary_fragments


# -- FIDO over BLE framing (CTAP 2.1 §11.4) --------------------------------------------------------


@contextlib.contextmanager
def _fido_ble(root: Path) -> Iterator[Callable[[list[bytes]], None]]:
    from nymi_device.protocol.fido_ble import Command, Failure, Message, Reassembler

    accept = frozenset({Command.PING, Command.MSG, Command.CANCEL})

    def check(frames: list[bytes]) -> None:
        reassembler = Reassembler(accept, max_message=300, max_fragment=32)
        for frame in frames:
            result = reassembler.feed(frame)
            assert result is None or isinstance(result, Message | Failure)
            if isinstance(result, Message):
                assert result.cmd in accept and len(result.data) <= 300

    yield check


# -- the band's flash journal -------------------------------------------------------------------------


@contextlib.contextmanager
def _journal(root: Path) -> Iterator[Callable[[tuple[bytes, list[tuple[int, int]], int]], None]]:
    from nymi_device.errors import StorageError
    from simulator.band.journal import JournalDamaged, parse_journal
    from simulator.band.storage import FlashStorage

    pristine = root / "pristine"
    states: list[dict[str, bytes]] = []
    with FlashStorage.open(pristine, durable=False) as storage:
        states.append(storage.snapshot())
        for i in range(6):
            with storage.transaction() as txn:
                txn.put(f"user/ctap/cred/{i}", bytes([i]) * 40)
                txn.put("user/ctap/counter", b"%d" % i)
                if i:
                    txn.delete(f"user/ctap/cred/{i - 1}")
            states.append(storage.snapshot())
    good = (pristine / "journal.log").read_bytes()
    work = root / "work"

    def check(case: tuple[bytes, list[tuple[int, int]], int]) -> None:
        garbage, flips, cut = case
        with contextlib.suppress(JournalDamaged):
            parse_journal(garbage)  # any bytes: whole records or JournalDamaged
        data = bytearray(good)
        for offset, mask in flips:
            data[offset % len(data)] ^= mask
        damaged = bytes(data[: max(0, len(data) - cut)])
        shutil.rmtree(work, ignore_errors=True)
        shutil.copytree(pristine, work)
        (work / "journal.log").write_bytes(damaged)
        try:
            with FlashStorage.open(work, durable=False, create=False) as storage:
                assert storage.snapshot() in states, "opened to a state that never was"
                if flips:
                    assert storage.snapshot() == states[-1] or cut, "a flip was survived"
        except StorageError:
            assert (work / "journal.log").read_bytes() == damaged, "a refusal wrote"

    yield check


_journal_cases = st.tuples(
    st.binary(max_size=200) | st.builds(lambda b: b"NYJ2" + b, st.binary(max_size=200)),
    st.lists(st.tuples(st.integers(0, 10_000), st.integers(1, 255)), max_size=3),
    st.integers(0, 400),
)


def _deferred(build: Callable[[], st.SearchStrategy[Any]]) -> st.SearchStrategy[Any]:
    return st.deferred(build)


TARGETS: list[FuzzTarget] = [
    FuzzTarget("ctap-cbor", "CTAP2 CBOR requests (authenticatorMakeCredential and the rest)",
               _ctap_requests, _ctap_cbor, 200),
    FuzzTarget("ctaphid", "CTAPHID reports (INIT, MSG, CBOR, continuation packets)",
               _hid_reports, _ctaphid, 300),
    FuzzTarget("apdu", "ISO 7816-4 command APDUs (short and extended)",
               st.binary(max_size=600), _apdu, 400),
    FuzzTarget("card-os", "APDU sequences to the band's card OS (FIDO, SEOS, Secure NFC)",
               st.lists(_near_apdu() | st.binary(max_size=40), min_size=1, max_size=10),
               _card_os, 100),
    FuzzTarget("management", "band management protocol fragments over BLE",
               _deferred(_management_fragments), _management, 150),
    FuzzTarget("fido-ble", "FIDO BLE frames (INIT and CONT fragments)",
               st.lists(st.binary(max_size=40), max_size=40), _fido_ble, 300),
    FuzzTarget("journal", "the flash journal's records (any bytes; a journal with flips and "
               "cuts)", _journal_cases, _journal, 150),
]
BY_NAME = {target.name: target for target in TARGETS}


@contextlib.contextmanager
def open_target(target: FuzzTarget, root: Path,
                count: list[int] | None = None) -> Iterator[Callable[[int, int | None], None]]:
    """Build the target's world once; yield ``run(max_examples, seed)``, which raises on a
    failure."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as with_seed

    root.mkdir(parents=True, exist_ok=True)
    with target.setup(root) as check:

        def run(max_examples: int, seed: int | None = None) -> None:
            @settings(max_examples=max_examples, deadline=None, database=None,
                      suppress_health_check=list(HealthCheck))
            @given(target.strategy)
            def prop(example: Any) -> None:
                if count is not None:
                    count[0] += 1
                check(example)

            (with_seed(seed)(prop) if seed is not None else prop)()

        yield run


def run_target(target: FuzzTarget, root: Path, *, max_examples: int,
               seed: int | None = None, count: list[int] | None = None) -> None:
    """Run one target's property for ``max_examples`` examples (raises on a failure)."""
    with open_target(target, root, count) as run:
        run(max_examples, seed)
