"""The card OS: status words for every malformed or unsupported command, chaining, extended
APDUs, GET RESPONSE, the reader's GET DATA, the ATR."""

from __future__ import annotations

import os

import cbor2
import pytest

from nymi_device.protocol.apdu import (
    SW,
    CommandApdu,
    ResponseApdu,
    atr_historical_bytes,
    atr_tck_ok,
    chain_commands,
    contactless_atr,
)
from simulator.band.nfc import NYMI_HISTORICAL_BYTES, CardOS

from .conftest import SELECT_FIDO, NfcBand, NfcBandFactory

NYMI = "nymi-band-3.0"


def make_credential_request(rk: bool = False, name: str = "ada", uv: bool = True) -> bytes:
    params = {
        1: os.urandom(32),
        2: {"id": "example.com", "name": "Example"},
        3: {"id": os.urandom(16), "name": name, "displayName": name},
        4: [{"type": "public-key", "alg": -7}],
        7: {"rk": rk, "uv": True} if uv else {"rk": rk},
    }
    return b"\x01" + cbor2.dumps(params, canonical=True)


def msg(request: bytes, *, p1: int = 0x80) -> CommandApdu:
    return CommandApdu(0x80, 0x10, p1, 0x00, request, le=256)


def fetch_all(nfc: NfcBand, first: ResponseApdu, le: int = 256) -> tuple[bytes, int]:
    """Follow 61xx with GET RESPONSE (``le`` bytes at a time), checking every SW2 on the way."""
    data, answer = first.data, first
    announced: list[tuple[int, int]] = []  # (bytes received so far, SW2 of 61xx)
    while answer.sw1 == 0x61:
        announced.append((len(data), answer.sw2))
        answer = nfc.send(CommandApdu(0x00, 0xC0, 0x00, 0x00, le=le).encode())
        assert len(answer.data) <= le
        data += answer.data
    for received, sw2 in announced:  # 61xx: xx = what is left (00 = 256 or more)
        assert sw2 == min(len(data) - received, 256) & 0xFF
    return data, answer.sw


@pytest.fixture
def nymi(nfc_band: NfcBandFactory) -> NfcBand:
    return nfc_band(NYMI)


# -- malformed commands ----------------------------------------------------------------------------

@pytest.mark.parametrize("raw", [
    "00A404",                 # shorter than a header
    "00A4040005A000",         # Lc 5, one byte follows
    "00A40400FFA0",           # Lc 255, one byte follows
    "00A404000000",           # extended Lc of zero
    "00A40400000005A0000006",  # extended Lc 5, three bytes follow
    "00A404000102030405",     # short Lc 1 followed by four bytes
])
def test_malformed_lengths_are_6700(nymi: NfcBand, raw: str) -> None:
    assert nymi.sw(raw) == SW.WRONG_LENGTH


def test_status_words_of_select(nymi: NfcBand) -> None:
    assert nymi.sw("00A4040008A0000006472F000200") == SW.FILE_NOT_FOUND  # unknown AID
    assert nymi.sw("00A40000023F00") == SW.FILE_NOT_FOUND                # by file id: no files
    assert nymi.sw("00A4040000") == SW.FILE_NOT_FOUND                    # the master file
    assert nymi.sw("00A4040208A0000006472F0001") == SW.FILE_NOT_FOUND    # next occurrence
    assert nymi.sw("00A4050008A0000006472F0001") == SW.WRONG_P1P2        # P1 05
    assert nymi.sw("00A4041008A0000006472F0001") == SW.WRONG_P1P2        # P2 10
    assert nymi.sw("00A4040011" + "A0" * 17) == SW.WRONG_DATA             # 17-byte name
    # Partial name; P2 0C suppresses the answer.
    assert nymi.apdu("00A4040005A000000647") == ResponseApdu(b"U2F_V2", SW.OK)
    assert nymi.apdu("00A4040C08A0000006472F0001") == ResponseApdu(b"", SW.OK)


def test_no_applet_selected(nymi: NfcBand) -> None:
    assert nymi.sw("0020000000") == SW.INS_NOT_SUPPORTED
    assert nymi.sw("8010000001" + "04" + "00") == SW.CLA_NOT_SUPPORTED
    assert nymi.sw("00C0000000") == SW.CONDITIONS_NOT_SATISFIED  # GET RESPONSE, nothing left


def test_unsupported_class_and_instruction_in_the_fido_applet(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    assert nymi.sw("0020000000") == SW.INS_NOT_SUPPORTED   # interindustry, not U2F
    assert nymi.sw("8012000000") == SW.INS_NOT_SUPPORTED   # proprietary, not NFCCTAP
    assert nymi.sw("A010000001" + "04") == SW.CLA_NOT_SUPPORTED
    assert nymi.sw("8010010001" + "04") == SW.WRONG_P1P2    # NFCCTAP_MSG P1 01
    assert nymi.sw("8010000101" + "04") == SW.WRONG_P1P2    # NFCCTAP_MSG P2 01
    assert nymi.sw("8011000000") == SW.CONDITIONS_NOT_SATISFIED  # GETRESPONSE, nothing running
    assert nymi.sw("8011220000") == SW.WRONG_P1P2


def test_logical_channels_and_secure_messaging_are_refused(nymi: NfcBand) -> None:
    assert nymi.sw("01A4040008A0000006472F000100") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert nymi.sw("40A4040008A0000006472F000100") == SW.LOGICAL_CHANNEL_NOT_SUPPORTED
    assert nymi.sw("0CA4040008A0000006472F000100") == SW.SECURE_MESSAGING_NOT_SUPPORTED


# -- reader pseudo-APDUs ---------------------------------------------------------------------------

def test_get_data_uid_and_historical_bytes(nymi: NfcBand) -> None:
    uid = bytes.fromhex(nymi.band.identity.nfc_id)
    assert len(uid) == 7
    assert nymi.apdu("FFCA000000") == ResponseApdu(uid, SW.OK)
    assert nymi.apdu("FFCA000007") == ResponseApdu(uid, SW.OK)
    assert nymi.apdu("FFCA000004").sw == 0x6C07           # Le too short: exact length in SW2
    assert nymi.apdu("FFCA00000A") == ResponseApdu(uid, SW.END_OF_DATA)
    assert nymi.apdu("FFCA010000") == ResponseApdu(NYMI_HISTORICAL_BYTES, SW.OK)
    assert nymi.sw("FFCA020000") == SW.WRONG_P1P2
    assert nymi.sw("FFCA0000") == SW.WRONG_LENGTH          # no Le
    assert nymi.sw("FFB0000010") == SW.INS_NOT_SUPPORTED


@pytest.mark.parametrize("fixture", ["nymi-band-2.0", "nymi-band-3.0", "ctap21-reference"])
def test_uid_answers_for_every_band_worn_or_not(nfc_band: NfcBandFactory, fixture: str) -> None:
    nfc = nfc_band(fixture, authenticated=False, worn=False)
    assert nfc.apdu("FFCA000000") == ResponseApdu(bytes.fromhex(nfc.band.identity.nfc_id), SW.OK)


def test_atr_is_a_pc_sc_contactless_atr(nymi: NfcBand) -> None:
    atr = nymi.card.atr
    assert atr == contactless_atr(NYMI_HISTORICAL_BYTES)
    assert atr.hex().upper() == "3B8A80018073C021C0544E796D69BE"
    assert atr_tck_ok(atr) and atr_historical_bytes(atr) == NYMI_HISTORICAL_BYTES


# -- chaining --------------------------------------------------------------------------------------

def test_command_chaining_assembles_one_request(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    request = make_credential_request(name="x" * 200)
    assert len(request) > 255
    parts = chain_commands(msg(request), size=100)
    assert len(parts) >= 3 and all(p.chained for p in parts[:-1]) and not parts[-1].chained
    for part in parts[:-1]:
        assert nymi.send(part.encode()) == ResponseApdu(b"", SW.OK)
    data, sw = fetch_all(nymi, nymi.send(parts[-1].encode()))
    assert sw == SW.OK and data[0] == 0
    assert cbor2.loads(data[1:])[1] == "packed"


def test_a_different_command_in_a_chain_is_6883(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    assert nymi.sw("9010800004" + "01020304") == SW.OK
    assert nymi.sw("8011000000") == SW.LAST_COMMAND_OF_CHAIN_EXPECTED
    # The chain was dropped: its last part alone is now a whole (malformed) request.
    answer = nymi.apdu("8010800001" + "04" + "00")
    assert answer.sw == SW.OK and answer.data[0] == 0  # a fresh getInfo


def test_chained_get_response_is_6884(nymi: NfcBand) -> None:
    assert nymi.sw("10C0000000") == SW.CHAINING_NOT_SUPPORTED


def test_chain_interrupted_by_get_response(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    assert nymi.sw("9010800001" + "01") == SW.OK
    assert nymi.sw("00C0000000") == SW.LAST_COMMAND_OF_CHAIN_EXPECTED


# -- long answers: GET RESPONSE and extended APDUs --------------------------------------------------

def test_get_response_hands_out_a_long_answer(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    first = nymi.send(msg(make_credential_request()).encode())
    assert first.sw1 == 0x61 and len(first.data) == 256
    data, sw = fetch_all(nymi, first, le=64)
    assert sw == SW.OK and data[0] == 0 and cbor2.loads(data[1:])[1] == "packed"
    # Nothing left: GET RESPONSE has nothing to give.
    assert nymi.sw("00C0000000") == SW.CONDITIONS_NOT_SATISFIED


def test_any_other_command_drops_what_is_left(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    assert nymi.send(msg(make_credential_request()).encode()).sw1 == 0x61
    assert nymi.apdu("FFCA000000").ok  # the reader's own command does not count
    assert nymi.sw("00C0000010") >> 8 == 0x61  # still there
    assert nymi.apdu(SELECT_FIDO).ok
    assert nymi.sw("00C0000000") == SW.CONDITIONS_NOT_SATISFIED


def test_get_response_checks_its_parameters(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    assert nymi.send(msg(make_credential_request()).encode()).sw1 == 0x61
    assert nymi.sw("00C0010000") == SW.WRONG_P1P2
    assert nymi.sw("00C00000") == SW.WRONG_LENGTH
    assert nymi.sw("00C0000000") >> 8 in (0x61, 0x90)


def test_extended_apdu_carries_request_and_answer_whole(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    request = make_credential_request(name="y" * 300)
    command = CommandApdu(0x80, 0x10, 0x80, 0x00, request, le=65536)
    assert command.extended and command.encode()[4] == 0
    answer = nymi.send(command.encode())
    assert answer.sw == SW.OK and len(answer.data) > 256
    assert cbor2.loads(answer.data[1:])[1] == "packed"
    # Extended case 2 (Le only) is understood too.
    assert nymi.apdu("00A40400" + "000008" + "A0000006472F0001" + "0000").ok


def test_power_off_forgets_the_selection(nymi: NfcBand) -> None:
    assert nymi.apdu(SELECT_FIDO).ok
    nymi.card.power_off()
    assert nymi.sw("8010000001" + "04" + "00") == SW.CLA_NOT_SUPPORTED
    nymi.card.power_on()
    assert nymi.card.selected is None


def test_two_applets_with_one_aid_are_refused() -> None:
    class Stub:
        aid = b"\xa0\x00\x00\x00\x01"
        name = "stub"

    with pytest.raises(ValueError):
        CardOS([Stub(), Stub()], uid=b"\x01\x02\x03\x04")  # type: ignore[list-item]
