"""A site on disk can be copied or moved: ``site.json`` names its databases relative to the
site; a database the site records but that is gone is refused, never recreated empty."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from simulator.cli import main as nymi_sim
from simulator.nes import Directory, NesError, open_site
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import U1, U2, band


def _site(root: Path, layout: str = "single") -> None:
    with open_site(root, layout=layout) as site:
        site.directory = Directory(site.directory.path, scrypt_n=2**8)
        site.directory.add_user(U2, PASSWORD)
        site.directory.add_user(U1, PASSWORD)
        site.enrollment.enroll(U2, band("AAAH-00125"))


def _accounts(root: Path) -> list[str]:
    with open_site(root) as site:
        return [u.account for u in site.enrollment.users()]


def test_site_json_names_databases_relative_to_the_site(tmp_path: Path) -> None:
    _site(tmp_path / "a", "it-ot")
    data = json.loads((tmp_path / "a" / "nes" / "site.json").read_text())
    assert data["servers"] == {"enrollment": "enrollment.db", "registration": "registration.db"}


def test_a_copied_site_writes_only_into_its_own_databases(tmp_path: Path) -> None:
    _site(tmp_path / "a")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with open_site(tmp_path / "b") as copy:
        copy.server().enroll(U1, band("ACAK-00056"))
    assert _accounts(tmp_path / "a") == [U2]
    assert sorted(_accounts(tmp_path / "b")) == sorted([U1, U2])


def test_a_moved_site_keeps_its_records(tmp_path: Path) -> None:
    _site(tmp_path / "a")
    shutil.move(tmp_path / "a", tmp_path / "moved")
    assert _accounts(tmp_path / "moved") == [U2]
    assert not (tmp_path / "a").exists()


def test_a_copied_site_of_an_older_release_uses_its_own_databases(tmp_path: Path) -> None:
    """Older releases recorded absolute paths; the default ones are read as the site's own."""
    _site(tmp_path / "a")
    site_file = tmp_path / "a" / "nes" / "site.json"
    site_file.write_text(json.dumps({"layout": "single", "servers": {
        "nes": str(tmp_path / "a" / "nes" / "nes.db")}}))
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    with open_site(tmp_path / "b") as copy:
        copy.server().enroll(U1, band("ACAK-00056"))
    assert _accounts(tmp_path / "a") == [U2]


def test_a_deleted_database_is_refused_not_recreated(tmp_path: Path) -> None:
    _site(tmp_path / "a")
    database = tmp_path / "a" / "nes" / "nes.db"
    database.unlink()
    with pytest.raises(NesError, match="nes.db") as refused:
        open_site(tmp_path / "a")
    assert "\n" not in str(refused.value)
    assert not database.exists()


def test_cli_refuses_a_site_whose_database_is_gone(tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    _site(tmp_path / "a")
    (tmp_path / "a" / "nes" / "nes.db").unlink()
    code = nymi_sim(["nes", "serve", "--demo", "--sim-dir", str(tmp_path / "a"), "--port", "1"])
    err = capsys.readouterr().err
    assert code != 0 and err.startswith("error: ") and err.count("\n") == 1, err
    assert "nes.db" in err
    assert not (tmp_path / "a" / "nes" / "nes.db").exists()


def test_a_garbled_site_file_is_refused_with_one_line(tmp_path: Path) -> None:
    _site(tmp_path / "a")
    (tmp_path / "a" / "nes" / "site.json").write_text("{not json")
    with pytest.raises(NesError, match="site.json") as refused:
        open_site(tmp_path / "a")
    assert "\n" not in str(refused.value)
