"""Malformed input: always a well-formed spec answer, never an exception, never a state change."""

from __future__ import annotations

import os
from collections.abc import Iterator

import cbor2
import pytest
from fido2 import cbor as fido_cbor
from fido2.ctap import CtapError
from fido2.ctap2 import ClientPin
from fido2.ctap2.pin import PinProtocolV2
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator.band.ctap import ScriptedWearer

from .conftest import NYMI, REFERENCE, Band, open_band

ERR = CtapError.ERR
KNOWN_STATUS = {int(code) for code in ERR} - {int(ERR.OTHER)}
ES256 = [{"type": "public-key", "alg": -7}]


@pytest.fixture(scope="module")
def bands(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Band]]:
    """A Nymi band and a reference band (PIN set) that each hold credentials."""
    root = tmp_path_factory.mktemp("robust")
    nymi = open_band(root / "nymi", NYMI)
    ref = open_band(root / "ref", REFERENCE)
    nymi.ctap2.make_credential(
        os.urandom(32), {"id": "a.example"}, {"id": b"u"}, ES256, options={"rk": True, "uv": True}
    )
    ref.ctap2.make_credential(
        os.urandom(32), {"id": "a.example"}, {"id": b"u"}, ES256, options={"rk": True}
    )
    ClientPin(ref.ctap2, PinProtocolV2()).set_pin("1234")
    for band in (nymi, ref):
        band.clock.advance(60)  # outside the reset window: Reset cannot erase anything
    yield {"nymi": nymi, "ref": ref}
    for band in (nymi, ref):
        band.storage.close()


def _assert_well_formed(response: bytes) -> None:
    assert response, "empty response"
    status = response[0]
    assert status in KNOWN_STATUS, f"status 0x{status:02x}"
    if status == 0 and len(response) > 1:
        body = fido_cbor.decode(response[1:])
        assert isinstance(body, dict)
        assert fido_cbor.encode(body) == response[1:]  # canonical
    elif status != 0:
        assert len(response) == 1


def _check(band: Band, request: bytes) -> bytes:
    before = band.storage.snapshot()
    response = band.auth.process_cbor(request)
    _assert_well_formed(response)
    assert band.storage.snapshot() == before
    return response


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.binary(max_size=300))
def test_arbitrary_bytes_to_process_cbor(bands: dict[str, Band], data: bytes) -> None:
    for band in bands.values():
        _check(band, data)


_cbor_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**64), max_value=2**64 - 1)
    | st.binary(max_size=70)
    | st.text(max_size=20)
    | st.sampled_from(["public-key", "id", "type", "alg", "uv", "up", "rk", "hmac-secret"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.integers(min_value=-3, max_value=12)
            | st.sampled_from(["id", "type", "alg", "name"]),
            children,
            max_size=5,
        )
    ),
    max_leaves=12,
)


@settings(
    max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    command=st.sampled_from(
        [0x01, 0x02, 0x04, 0x06, 0x07, 0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x40, 0x41]
    ),
    params=st.dictionaries(st.integers(min_value=0, max_value=12), _cbor_values, max_size=6),
)
def test_structured_garbage_per_command(bands: dict[str, Band], command: int, params: dict) -> None:
    request = bytes((command,)) + cbor2.dumps(params)
    for band in bands.values():
        _check(band, request)


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    apdu=st.binary(max_size=200)
    | st.builds(
        lambda ins, p1, body: bytes((0, ins, p1, 0, len(body))) + body,
        st.integers(0, 4),
        st.sampled_from([0, 3, 7, 8]),
        st.binary(min_size=0, max_size=120),
    )
)
def test_arbitrary_apdus_to_process_u2f(
    tmp_path_factory: pytest.TempPathFactory, apdu: bytes
) -> None:
    band = _u2f_band(tmp_path_factory)
    before = band.storage.snapshot()
    response = band.auth.process_u2f(apdu)
    assert len(response) >= 2
    assert response[-2:] in {
        b"\x90\x00", b"\x67\x00", b"\x69\x85", b"\x6a\x80", b"\x6a\x86", b"\x6d\x00", b"\x6e\x00",
    }  # fmt: skip
    if response[-2:] != b"\x90\x00":
        assert len(response) == 2
    assert band.storage.snapshot() == before


_U2F_BAND: list[Band] = []


def _u2f_band(factory: pytest.TempPathFactory) -> Band:
    if not _U2F_BAND:
        # A wearer that denies presence: no registration can change the flash.
        _U2F_BAND.append(
            open_band(factory.mktemp("u2f"), REFERENCE, lambda s: ScriptedWearer(s, verified=False))
        )
    return _U2F_BAND[0]


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"", ERR.INVALID_LENGTH),
        (b"\x99", ERR.INVALID_COMMAND),
        (b"\x01" + b"\xa1", ERR.INVALID_CBOR),  # truncated map
        (b"\x01" + cbor2.dumps({1: b"x"}) + b"\x00", ERR.INVALID_CBOR),  # trailing byte
        (b"\x01\xbf\x01\x40\xff", ERR.INVALID_CBOR),  # indefinite-length map
        (b"\x01\xa2\x01\x40\x01\x40", ERR.INVALID_CBOR),  # duplicate key
        (b"\x02\xa1\x01\x62\xff\xfe", ERR.INVALID_CBOR),  # invalid UTF-8
        (b"\x01" + cbor2.dumps([1, 2]), ERR.CBOR_UNEXPECTED_TYPE),  # not a map
        (b"\x01" + cbor2.dumps({"a": 1}), ERR.CBOR_UNEXPECTED_TYPE),  # text key
        (b"\x01" + cbor2.dumps({-1: 1}), ERR.CBOR_UNEXPECTED_TYPE),  # negative key
        (b"\x01", ERR.MISSING_PARAMETER),  # no parameters at all
        (b"\x01" + cbor2.dumps({1: None}), ERR.CBOR_UNEXPECTED_TYPE),
        (b"\x02" + cbor2.dumps({1: 5, 2: b"x" * 32}), ERR.CBOR_UNEXPECTED_TYPE),
        (b"\x02" + cbor2.dumps({2: b"x" * 32}), ERR.MISSING_PARAMETER),
        (
            b"\x01"
            + cbor2.dumps(
                {1: b"x" * 32, 2: {"id": "a"}, 3: {"id": b"u"}, 4: [{"type": "public-key"}]}
            ),
            ERR.INVALID_CBOR,  # §6.1.2 step 3.1.1: a pubKeyCredParams member is missing
        ),
        (
            b"\x02" + cbor2.dumps({1: "a", 2: b"x" * 32, 3: [{"id": b"1"}]}),
            ERR.INVALID_CBOR,
        ),
        (b"\x02" + cbor2.dumps({1: "a", 2: b"x" * 32, 5: {"up": 1}}), ERR.CBOR_UNEXPECTED_TYPE),
        (b"\x08", ERR.NOT_ALLOWED),  # getNextAssertion without getAssertion
        (b"\x08\xa0", ERR.INVALID_LENGTH),
        (b"\x04" + b"\x00" * 5000, ERR.INVALID_LENGTH),  # longer than maxMsgSize (1200)
    ],
)
def test_malformed_requests(bands: dict[str, Band], request_bytes: bytes, status: int) -> None:
    assert _check(bands["nymi"], request_bytes) == bytes((status,))
