"""The band management protocol's shared definition, pure (nymi_device.protocol.management*).

Spec and code in step (docs/protocol.md tables against the enums), the CBOR subset, framing, the
envelope, and the secure session's handshake and record layer as state machines.
"""

from __future__ import annotations

import datetime
import re
import struct
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID
from hypothesis import given, settings
from hypothesis import strategies as st

from nymi_device.errors import InvalidInputError, SecureSessionError, StatusCode
from nymi_device.protocol.management import (
    NOTIFY_UUID,
    REQUEST_UUID,
    SERVICE_UUID,
    Command,
    Event,
    MessageError,
    Record,
    Request,
    Response,
    decode_message,
    encode_message,
    uuid_for,
)
from nymi_device.protocol.management_bodies import (
    INFO_KEYS,
    STATUS_KEYS,
    Capabilities,
    decode_event,
    encode_capabilities,
    encode_event,
)
from nymi_device.protocol.management_cbor import MAX_DEPTH, CborError, decode, encode
from nymi_device.protocol.management_frames import (
    MAX_ATT_MTU,
    MAX_MESSAGE,
    MIN_ATT_MTU,
    Fragmenter,
    FrameError,
    Reassembler,
    fragment_message,
)
from nymi_device.protocol.management_session import (
    HostHandshake,
    RecordLayer,
    Side,
    answer_hello,
    verify_chain,
)
from nymi_device.protocol.model import BandEvent, EventKind

SPEC = (Path(__file__).resolve().parents[2] / "docs" / "protocol.md").read_text()
CAPS = encode_capabilities(Capabilities(frozenset(int(c) for c in Command), ("screen",), 4096, 64))
VALID_FROM = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
VALID_TO = datetime.datetime(2049, 12, 31, tzinfo=datetime.UTC)
_DER = Encoding.DER


def section(number: str) -> str:
    match = re.search(rf"^##+ {re.escape(number)}\.? .*?(?=^##+ \d)", SPEC, re.M | re.S)
    assert match, f"docs/protocol.md has no section {number}"
    return match.group(0)


# -- certificates for the session tests ---------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _usage(*, sign: bool, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(sign, False, False, False, False, ca, ca, False, False)


def make_ca(cn: str = "test CA") -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder().subject_name(_name(cn)).issuer_name(_name(cn))
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(VALID_FROM).not_valid_after(VALID_TO)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_usage(sign=False, ca=True), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return key, cert


def make_leaf(
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate], serial: str = "AAAH-00125",
    *, ca_flag: bool = False, not_after: datetime.datetime = VALID_TO,
) -> tuple[ec.EllipticCurvePrivateKey, x509.Certificate]:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.SERIAL_NUMBER, serial),
                         x509.NameAttribute(NameOID.COMMON_NAME, serial)])
    cert = (
        x509.CertificateBuilder().subject_name(subject).issuer_name(ca[1].subject)
        .public_key(key.public_key()).serial_number(x509.random_serial_number())
        .not_valid_before(VALID_FROM).not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(_usage(sign=True, ca=ca_flag), critical=True)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca[0].public_key()),
                       critical=False)
        .sign(ca[0], hashes.SHA256())
    )
    return key, cert


@dataclass(frozen=True)
class Pki:
    ca: tuple[ec.EllipticCurvePrivateKey, x509.Certificate]
    key: ec.EllipticCurvePrivateKey
    chain: list[bytes]


@pytest.fixture(scope="module")
def pki() -> Pki:
    ca = make_ca()
    key, leaf = make_leaf(ca)
    return Pki(ca, key, [leaf.public_bytes(_DER)])


def handshake(pki: Pki) -> tuple[RecordLayer, RecordLayer]:
    host = HostHandshake(pki.ca[1])
    band = answer_hello(host.hello_body(), pki.key, pki.chain, CAPS)
    info, keys = host.finish(band.body)
    assert keys.session_id == band.keys.session_id
    return RecordLayer(keys, Side.HOST, info.version), RecordLayer(band.keys, Side.BAND, 1)


# -- spec and code in step ----------------------------------------------------------------------


def test_uuids_share_the_documented_base() -> None:
    assert str(SERVICE_UUID) == "f4140001-54d0-4a23-8354-fb91d034adec"
    assert str(REQUEST_UUID) == "f4140002-54d0-4a23-8354-fb91d034adec"
    assert str(NOTIFY_UUID) == "f4140003-54d0-4a23-8354-fb91d034adec"
    documented = set(re.findall(r"`(f414[0-9a-f]{4}-54d0-4a23-8354-fb91d034adec)`", section("3")))
    assert documented == {str(SERVICE_UUID), str(REQUEST_UUID), str(NOTIFY_UUID)}
    with pytest.raises(InvalidInputError):
        uuid_for(0x10000)


def test_status_code_table_matches_the_enum() -> None:
    rows = re.findall(r"^\| (0x[0-9A-F]{2}) \| ([A-Z_]+) \|", section("10"), re.M)
    documented = {int(code, 16): name for code, name in rows}
    assert documented == {c.value: c.name for c in StatusCode if c is not StatusCode.UNKNOWN}


def test_command_table_matches_the_enum() -> None:
    rows = re.findall(r"^\| (0x[0-9A-F]{2}) \| ([A-Z_]+) \|", section("8"), re.M)
    assert {int(code, 16): name for code, name in rows} == {c.value: c.name for c in Command}


def test_identity_and_status_key_tables_match_the_codecs() -> None:
    def pairs(text: str) -> dict[int, str]:
        found = re.findall(r"\| (\d+) \| ([a-z_]+)", text)
        return {int(k): v for k, v in found}

    assert pairs(section("8.1")) == {**INFO_KEYS, 12: "protocol"}
    assert pairs(section("8.2")) == STATUS_KEYS


def test_the_documented_example_is_what_the_code_sends() -> None:
    message = encode_message(Request(1, Command.GET_INFO))
    assert message.hex(" ") == "a4 00 01 01 01 02 01 03 02"
    assert fragment_message(message, 0, 23) == [bytes.fromhex("00000009") + message]
    assert "`a4 00 01 01 01 02 01 03 02`" in SPEC
    assert "`00 00 00 09 a4 00 01 01 01 02 01 03 02`" in SPEC


# -- §5.1 the CBOR subset -----------------------------------------------------------------------

values = st.recursive(
    st.none() | st.booleans() | st.integers(-(1 << 64), (1 << 64) - 1)
    | st.floats(allow_nan=False) | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.integers(-100, 1000) | st.text(max_size=8), inner, max_size=5),
    max_leaves=20,
)


@given(values)
def test_cbor_round_trips_and_is_deterministic(value: object) -> None:
    data = encode(value)
    assert decode(data) == value
    assert encode(decode(data)) == data


@given(st.binary(max_size=64))
def test_cbor_decoder_is_total(data: bytes) -> None:
    try:
        decode(data)
    except CborError:
        pass


@pytest.mark.parametrize(
    ("hex_data", "why"),
    [
        ("c11a514b67b0", "a tag"),
        ("9f01ff", "an indefinite array"),
        ("1817", "a non-shortest integer"),
        ("590001" "00", "a non-shortest length"),
        ("a2020101 01".replace(" ", ""), "unsorted keys"),
        ("a201010101", "a repeated key"),
        ("62c328", "invalid UTF-8"),
        ("f7", "undefined"),
        ("f0", "a simple value"),
        ("0101", "trailing bytes"),
        ("83", "truncation"),
        ("a1f401", "a boolean key"),
        ("81" * (MAX_DEPTH + 1) + "01", "deep nesting"),
    ],
)
def test_cbor_decoder_rejects_what_is_outside_the_subset(hex_data: str, why: str) -> None:
    with pytest.raises(CborError):
        decode(bytes.fromhex(hex_data))


def test_cbor_accepts_short_floats_and_writes_64_bit_ones() -> None:
    assert decode(b"\xf9" + struct.pack(">e", 1.5)) == 1.5
    assert decode(b"\xfa" + struct.pack(">f", 0.25)) == 0.25
    assert encode(1.5) == b"\xfb" + struct.pack(">d", 1.5)
    assert encode({"b": 1, 10: 2, 1: 3}) == bytes.fromhex("a3 01 03 0a 02 61 62 01")


# -- §4 framing ---------------------------------------------------------------------------------


@given(st.binary(min_size=1, max_size=MAX_MESSAGE), st.integers(MIN_ATT_MTU, MAX_ATT_MTU))
@settings(max_examples=60)
def test_fragments_fit_the_mtu_and_reassemble(message: bytes, mtu: int) -> None:
    fragments = Fragmenter(mtu).fragment(message)
    assert all(len(f) <= min(mtu - 3, 512) for f in fragments)
    assert len(fragments) <= 256
    reassembler = Reassembler()
    results = [r for f in fragments for r in reassembler.push(f)]
    assert results == [message]


def test_the_largest_message_fits_at_the_smallest_mtu() -> None:
    fragments = fragment_message(bytes(MAX_MESSAGE), 7, MIN_ATT_MTU)
    assert len(fragments) == 228  # 16 + 227 * 18 >= 4096 > 16 + 226 * 18
    assert fragments[0][:4] == bytes([7, 0]) + MAX_MESSAGE.to_bytes(2, "big")
    with pytest.raises(InvalidInputError):
        fragment_message(bytes(MAX_MESSAGE + 1), 0, MIN_ATT_MTU)
    with pytest.raises(InvalidInputError):
        Fragmenter(22)


def test_message_numbers_count_and_wrap() -> None:
    fragmenter = Fragmenter()
    numbers = [fragmenter.fragment(b"x")[0][0] for _ in range(258)]
    assert numbers[:3] == [0, 1, 2] and numbers[255:] == [255, 0, 1]


def test_a_lost_fragment_drops_the_message_and_its_rest_silently() -> None:
    first, _lost, third, fourth = fragment_message(bytes(range(60)), 3, 23)
    reassembler = Reassembler()
    assert reassembler.push(first) == []
    (error,) = reassembler.push(third)
    assert isinstance(error, FrameError)
    assert (error.status, error.message_number) == (StatusCode.INVALID_FRAME, 3)
    assert reassembler.push(fourth) == []  # the rest of the failed message: dropped
    assert not reassembler.partial
    assert reassembler.push(fragment_message(b"ok", 4, 23)[0]) == [b"ok"]


def test_a_duplicate_fragment_is_dropped() -> None:
    fragments = fragment_message(bytes(range(40)), 9, 23)
    reassembler = Reassembler()
    out: list[bytes | FrameError] = []
    for fragment in fragments:
        out += reassembler.push(fragment)
        out += reassembler.push(fragment)
    assert out == [bytes(range(40))]


def test_a_new_message_before_the_end_reports_the_partial_one() -> None:
    partial = fragment_message(bytes(50), 1, 23)[0]
    whole = fragment_message(b"next", 2, 23)[0]
    reassembler = Reassembler()
    reassembler.push(partial)
    error, message = reassembler.push(whole)
    assert isinstance(error, FrameError) and error.message_number == 1
    assert message == b"next"


@pytest.mark.parametrize(
    ("fragment", "status"),
    [
        (b"\x00", StatusCode.INVALID_FRAME),
        (b"\x00\x00\x00", StatusCode.INVALID_FRAME),
        (b"\x00\x00\x00\x00", StatusCode.INVALID_FRAME),
        (b"\x00\x00\x10\x01", StatusCode.MESSAGE_TOO_LARGE),
        (b"\x00\x00\x00\x01ab", StatusCode.INVALID_FRAME),
        (b"\x05\x01abc", StatusCode.INVALID_FRAME),
        (bytes(513), StatusCode.INVALID_FRAME),
    ],
)
def test_malformed_fragments_are_refused(fragment: bytes, status: StatusCode) -> None:
    (error,) = Reassembler().push(fragment)
    assert isinstance(error, FrameError) and error.status == status


fragment_streams = st.lists(
    st.one_of(
        st.binary(max_size=30),
        st.builds(lambda n, i, rest: bytes([n, i]) + rest, st.integers(0, 3), st.integers(0, 3),
                  st.binary(max_size=20)),
    ),
    max_size=40,
)


@given(fragment_streams)
def test_the_reassembler_is_total(fragments: list[bytes]) -> None:
    reassembler = Reassembler()
    for fragment in fragments:
        for item in reassembler.push(fragment):
            if isinstance(item, FrameError):
                assert item.status in (StatusCode.INVALID_FRAME, StatusCode.MESSAGE_TOO_LARGE)
            else:
                assert 1 <= len(item) <= MAX_MESSAGE


# -- §5.2 the envelope --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "message",
    [
        Request(1, Command.GET_STATUS),
        Request(0xFFFFFFFF, Command.ENROLL_SETUP_CODE, {1: "ABC123"}),
        Response(5, Command.GET_STATUS, StatusCode.OK, {1: "AAAH-00125"}),
        Response(0, 0, StatusCode.INVALID_FRAME, {1: 3}, "lost fragment"),
        Event({1: 0, 2: 1.5, 3: "screen", 4: {"screen": "No User"}}),
        Record(2**64 - 2, bytes(16)),
    ],
)
def test_messages_round_trip(message: Request | Response | Event | Record) -> None:
    assert decode_message(encode_message(message)) == message


@pytest.mark.parametrize(
    "value",
    [
        [1, 2],
        {"0": 1, "1": 1},
        {0: 1},
        {0: 1, 1: 9},
        {0: 1, 1: 1, 2: 0, 3: 2},
        {0: 1, 1: 1, 2: 1, 3: 2, 5: [1]},
        {0: 1, 1: 4, 7: 0, 8: bytes(15)},
        {0: 1, 1: 2, 2: 1, 3: 2, 4: 0, 6: 7},
        {0: -1, 1: 1, 2: 1, 3: 2},
    ],
)
def test_invalid_envelopes_are_refused_with_invalid_message(value: object) -> None:
    with pytest.raises(MessageError) as caught:
        decode_message(encode(value))
    assert caught.value.status == StatusCode.INVALID_MESSAGE


@given(st.binary(max_size=80))
def test_the_message_decoder_is_total(data: bytes) -> None:
    try:
        decode_message(data)
    except MessageError as exc:
        assert exc.status == StatusCode.INVALID_MESSAGE


def test_events_never_carry_the_setup_code() -> None:
    event = BandEvent(1.0, EventKind.ENROLLMENT, {"state": "setup-code-shown",
                                                   "setup_code": "ABC234"})
    body = encode_event(7, event)
    assert "setup_code" not in body[4]  # type: ignore[operator]
    decoded = decode_event(body)
    assert decoded is not None and decoded.index == 7 and "setup_code" not in decoded.event.data
    assert decode_event({1: 0, 2: 0.0, 3: "from-a-newer-band", 4: {}}) is None


# -- §7 the secure session ----------------------------------------------------------------------


def test_both_sides_derive_the_same_keys_and_exchange_records(pki: Pki) -> None:
    host, band = handshake(pki)
    for n in range(3):
        assert band.open(host.seal(b"request %d" % n)) == b"request %d" % n
        assert host.open(band.seal(b"response %d" % n)) == b"response %d" % n
    assert host.send_sequence == host.recv_sequence == 3


def test_a_replayed_record_is_refused(pki: Pki) -> None:
    host, band = handshake(pki)
    first = host.seal(b"one")
    band.open(first)
    with pytest.raises(SecureSessionError) as caught:
        band.open(first)
    assert caught.value.status == StatusCode.REPLAYED


def test_a_reordered_record_is_refused(pki: Pki) -> None:
    host, band = handshake(pki)
    host.seal(b"one")
    second = host.seal(b"two")
    with pytest.raises(SecureSessionError) as caught:
        band.open(second)
    assert caught.value.status == StatusCode.OUT_OF_ORDER


@pytest.mark.parametrize("position", [0, 7, -1])
def test_a_tampered_record_is_refused(pki: Pki, position: int) -> None:
    host, band = handshake(pki)
    record = host.seal(b"enroll this wearer")
    ciphertext = bytearray(record.ciphertext)
    ciphertext[position] ^= 0x01
    with pytest.raises(SecureSessionError) as caught:
        band.open(Record(record.sequence, bytes(ciphertext)))
    assert caught.value.status == StatusCode.INTEGRITY_FAILURE


def test_a_record_reflected_to_its_sender_is_refused(pki: Pki) -> None:
    host, _ = handshake(pki)
    with pytest.raises(SecureSessionError) as caught:
        host.open(host.seal(b"mine"))
    assert caught.value.status == StatusCode.INTEGRITY_FAILURE


def _answer(pki: Pki, key: ec.EllipticCurvePrivateKey | None = None,
            chain: list[bytes] | None = None) -> tuple[HostHandshake, dict[int, object]]:
    host = HostHandshake(pki.ca[1])
    answer = answer_hello(host.hello_body(), key or pki.key, chain or pki.chain, CAPS)
    return host, dict(answer.body)


def _status_of(host: HostHandshake, body: dict[int, object]) -> StatusCode:
    with pytest.raises(SecureSessionError) as caught:
        host.finish(body)
    return caught.value.status


def test_a_certificate_from_another_ca_is_untrusted(pki: Pki) -> None:
    rogue_key, rogue_leaf = make_leaf(make_ca("rogue CA"))
    host, body = _answer(pki, rogue_key, [rogue_leaf.public_bytes(_DER)])
    assert _status_of(host, body) == StatusCode.UNTRUSTED_BAND


def test_a_ca_certificate_posing_as_a_band_is_untrusted(pki: Pki) -> None:
    key, cert = make_leaf(pki.ca, ca_flag=True)
    host, body = _answer(pki, key, [cert.public_bytes(_DER)])
    assert _status_of(host, body) == StatusCode.UNTRUSTED_BAND


def test_an_expired_certificate_is_untrusted(pki: Pki) -> None:
    _, cert = make_leaf(pki.ca, not_after=datetime.datetime(2025, 1, 1, tzinfo=datetime.UTC))
    with pytest.raises(SecureSessionError) as caught:
        verify_chain([cert.public_bytes(_DER)], pki.ca[1])
    assert caught.value.status == StatusCode.UNTRUSTED_BAND


def test_a_signature_by_another_key_fails_the_handshake(pki: Pki) -> None:
    host, body = _answer(pki, ec.generate_private_key(ec.SECP256R1()))
    assert _status_of(host, body) == StatusCode.HANDSHAKE_FAILED


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (5, encode_capabilities(Capabilities(frozenset({1, 2}), (), 4096, 64))),  # stripped
        (3, bytes(32)),  # another band nonce
        (1, 2),  # a version the host did not offer
        (2, b"\x04" + bytes(64)),  # not a point
        (6, b"not a signature"),
    ],
)
def test_a_tampered_handshake_fails(pki: Pki, key: int, value: object) -> None:
    host, body = _answer(pki)
    body[key] = value
    assert _status_of(host, body) == StatusCode.HANDSHAKE_FAILED


def test_the_band_refuses_a_malformed_or_incompatible_hello(pki: Pki) -> None:
    hello = HostHandshake(pki.ca[1]).hello_body()
    for broken, status in [
        ({**hello, 2: b"\x04" + bytes(64)}, StatusCode.HANDSHAKE_FAILED),
        ({**hello, 3: bytes(31)}, StatusCode.HANDSHAKE_FAILED),
        ({**hello, 1: []}, StatusCode.HANDSHAKE_FAILED),
        ({**hello, 1: [2, 3]}, StatusCode.UNSUPPORTED_VERSION),
    ]:
        with pytest.raises(SecureSessionError) as caught:
            answer_hello(broken, pki.key, [b"x"], CAPS)
        assert caught.value.status == status
