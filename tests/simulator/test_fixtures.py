"""Firmware fixtures: every file is valid, the Nymi surfaces match the vendor's metadata, and a
bad fixture is refused with one line naming the file, the field and the expectation."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from nymi_device.errors import FixtureError
from simulator.fixtures import FIXTURE_DIR, fixture_ids, load_fixture, load_fixture_file

REQUIRED = {"nymi-band-3.0", "nymi-band-3.0-seos", "nymi-band-3.0-secure-nfc", "nymi-band-2.0",
            "ctap21-reference"}


def test_the_required_fixtures_exist_and_validate() -> None:
    assert REQUIRED <= set(fixture_ids())
    for fid in fixture_ids():
        fixture = load_fixture_file(FIXTURE_DIR / f"{fid}.toml")
        assert fixture.id == fid
        assert fixture.sources, f"{fid} names no sources"
        assert re.match(fixture.identity.serial_pattern, "AAAH-00125")


@pytest.mark.parametrize("fid", ["nymi-band-3.0", "nymi-band-3.0-seos", "nymi-band-3.0-secure-nfc"])
def test_band_30_fido_surface_is_the_metadata_statement(fid: str) -> None:
    ctap = load_fixture(fid).ctap
    assert ctap is not None
    assert ctap.aaguid == "0acf3011-bc60-f375-fb53-6f05f43154e0"
    assert ctap.versions == ["U2F_V2", "FIDO_2_0", "FIDO_2_1_PRE"]
    assert ctap.extensions == ["credProtect", "hmac-secret"]
    assert ctap.options["rk"] and ctap.options["uv"] and ctap.options["credMgmt"]
    assert ctap.options["up"] is False and "clientPin" not in ctap.options
    assert (ctap.max_msg_size, ctap.max_credential_count_in_list,
            ctap.max_credential_id_length) == (1200, 20, 128)
    assert ctap.transports == ["nfc"] and ctap.algorithms == ["ES256"]


def test_feature_flags_distinguish_the_band_30_variants() -> None:
    assert load_fixture("nymi-band-3.0-seos").capabilities.seos
    assert not load_fixture("nymi-band-3.0-seos").capabilities.secure_nfc
    assert load_fixture("nymi-band-3.0-secure-nfc").capabilities.secure_nfc
    band20 = load_fixture("nymi-band-2.0")
    assert band20.capabilities.biometric == "ecg" and not band20.capabilities.fido2
    assert band20.capabilities.wipe_gesture == "security-wipe" and band20.ctap is None
    assert load_fixture("ctap21-reference").radio.fido_ble


def _variant(tmp_path: Path, old: str, new: str, name: str = "nymi-band-3.0") -> Path:
    text = (FIXTURE_DIR / "nymi-band-3.0.toml").read_text()
    assert old in text
    path = tmp_path / f"{name}.toml"
    path.write_text(text.replace(old, new, 1))
    return path


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("enrollment_touches = 8", "enrollment_touches = \"eight\"",
     "nymi-band-3.0.toml: field limits.enrollment_touches: expected a valid integer"),
    ("enrollment_touches = 8", "", "nymi-band-3.0.toml: field limits.enrollment_touches: "
                                   "expected a value (the field is required)"),
    ("enrollment_touches = 8", "enrollment_touches = 8\ntouches = 3",
     "nymi-band-3.0.toml: field limits.touches: expected no such field (unknown name)"),
    ('generation = "3.0"', 'generation = "4.0"',
     "nymi-band-3.0.toml: field identity.generation: expected '2.0', '3.0' or "
     "'reference', got '4.0'"),
    ('aaguid = "0acf3011', 'aaguid = "zzzz3011',
     "nymi-band-3.0.toml: field ctap.aaguid: expected a string matching pattern"),
])
def test_a_bad_fixture_is_refused_with_one_line(
        tmp_path: Path, old: str, new: str, expected: str) -> None:
    path = _variant(tmp_path, old, new)
    with pytest.raises(FixtureError) as info:
        load_fixture_file(path)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(expected)


def test_a_fixture_that_is_not_toml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_text("id = \n[identity")
    with pytest.raises(FixtureError, match=r"^broken.toml: not valid TOML"):
        load_fixture_file(path)


def test_fixture_id_must_match_its_file_name(tmp_path: Path) -> None:
    path = _variant(tmp_path, "x", "x", name="other-name")
    with pytest.raises(FixtureError, match="field id: expected 'other-name'"):
        load_fixture_file(path)


def test_fido2_fixture_needs_a_ctap_table(tmp_path: Path) -> None:
    text = (FIXTURE_DIR / "nymi-band-3.0.toml").read_text()
    path = tmp_path / "nymi-band-3.0.toml"
    path.write_text(text[: text.index("[ctap]")])
    with pytest.raises(FixtureError, match="field ctap: expected a \\[ctap\\] table"):
        load_fixture_file(path)


def test_unknown_fixture_names_the_known_ones() -> None:
    with pytest.raises(FixtureError, match="unknown fixture 'nymi-band-9'.*nymi-band-3.0"):
        load_fixture("nymi-band-9")
