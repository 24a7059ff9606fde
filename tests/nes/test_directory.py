"""The built-in directory standing in for Active Directory."""

from __future__ import annotations

import base64
import hashlib
import stat
from pathlib import Path

import pytest

from simulator.nes import ADMIN_GROUP, Directory, NesConflict, NesInvalidInput, NotFound
from simulator.nes.directory import hash_password, verify_password


def test_hashes_are_salted_scrypt() -> None:
    a, b = hash_password("pw", n=2**8), hash_password("pw", n=2**8)
    assert a != b and a.startswith("scrypt$256$8$1$")
    assert verify_password("pw", a) and not verify_password("pW", a)
    assert not verify_password("pw", "garbage") and not verify_password("pw", "scrypt$x")


def test_pbkdf2_hashes_are_accepted() -> None:
    salt = b"0123456789abcdef"
    digest = hashlib.pbkdf2_hmac("sha256", b"pw", salt, 1000)
    encoded = f"pbkdf2_sha256$1000${base64.b64encode(salt).decode()}$" \
              f"{base64.b64encode(digest).decode()}"
    assert verify_password("pw", encoded) and not verify_password("nope", encoded)


def test_users_groups_and_authentication() -> None:
    d = Directory(scrypt_n=2**8)
    admin = d.add_user("corp\\admin", "pw", groups=[ADMIN_GROUP])
    assert admin.account == "CORP\\admin" and admin.is_admin
    d.add_user("tw-user2", "pw2", first_name="TW")
    assert d.authenticate("CORP\\tw-user2", "pw2") is not None
    assert d.authenticate("tw-user2", "pw2") is not None  # a unique bare name resolves
    assert d.authenticate("tw-user2", "wrong") is None
    assert d.authenticate("nobody", "pw") is None
    assert not d.get("tw-user2").is_admin
    assert d.add_to_group("tw-user2", ADMIN_GROUP).is_admin
    assert not d.remove_from_group("tw-user2", ADMIN_GROUP).is_admin
    d.set_password("tw-user2", "new")
    assert d.authenticate("tw-user2", "new") is not None
    with pytest.raises(NesConflict):
        d.add_user("CORP\\TW-USER2", "x")
    d.add_user("PLANT\\tw-user2", "x")
    with pytest.raises(NesInvalidInput, match="several domains"):
        d.find("tw-user2")
    with pytest.raises(NotFound):
        d.get("CORP\\ghost")
    with pytest.raises(NesInvalidInput):
        d.add_user("bad name!", "x")
    assert "password_hash" not in d.get("CORP\\admin").to_json()


def test_persistence_is_private_and_shared(tmp_path: Path) -> None:
    path = tmp_path / "directory.json"
    first = Directory(path, scrypt_n=2**8)
    first.add_user("CORP\\tw-user2", "pw")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    second = Directory(path)
    assert second.authenticate("tw-user2", "pw") is not None
    second.add_user("CORP\\tw-user1", "pw")
    assert first.find("tw-user1") is not None  # re-read after another writer
