"""Server layouts (DOMAIN 2.6): one NES by default, or an Enrollment and a Registration NES,
each with its own database and records; administrator actions apply to the one named."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from simulator.nes import (
    DEFAULT_GROUP_POLICY,
    Directory,
    Layout,
    Nes,
    NesInvalidInput,
    NotFound,
    Site,
    memory_site,
    open_site,
)
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import SELF_SERVICE_OWN, U2, band, states


@pytest.fixture
def it_ot(open_nes: Callable[..., Nes], directory: Directory) -> Site:
    site = Site(layout=Layout.IT_OT, directory=directory)
    for name in Layout.IT_OT.server_names:
        site.servers[name] = open_nes(name=name)
    return site


def test_records_are_independent_per_server(it_ot: Site) -> None:
    enrollment, registration = it_ot.server("enrollment"), it_ot.server("registration")
    assert it_ot.enrollment is enrollment and it_ot.registration is registration
    enrollment.enroll(U2, band("AAAH-00125"))
    with pytest.raises(NotFound):
        registration.user(U2)
    result = registration.register(U2, band("AAAH-00125"), enrolled_at_nes="enrollment")
    row = result.user.bands[0]
    assert (row.enrolled_at_nes, row.registered_at_nes) == ("enrollment", "registration")
    assert enrollment.user(U2).bands[0].registered_at_nes is None

    # An administrator action applies to the server it is made on only.
    enrollment.suspend("AAAH-00125")
    assert states(enrollment, U2) == [("AAAH-00125", False, True)]
    assert states(registration, U2) == [("AAAH-00125", True, True)]
    registration.suspend("AAAH-00125")
    assert states(registration, U2) == [("AAAH-00125", False, True)]

    enrollment.update_policy(DEFAULT_GROUP_POLICY, {SELF_SERVICE_OWN: True})
    assert enrollment.effective_policy(U2).self_reenroll_own
    assert not registration.effective_policy(U2).self_reenroll_own
    assert {e.key for e in registration.audit(table="assignments")} == {"AAAH-00125"}
    with pytest.raises(NotFound, match="no NES named 'nes'"):
        it_ot.server("nes")


def test_single_layout_by_default(tmp_path: Path) -> None:
    directory = Directory(scrypt_n=2**8)
    directory.add_user("CORP\\tw-user2", PASSWORD)
    with open_site(tmp_path, directory=directory) as site:
        assert site.layout is Layout.SINGLE and list(site.servers) == ["nes"]
        assert site.registration is None
        site.server().enroll(U2, band("AAAH-00125"))
    assert (tmp_path / "nes" / "nes.db").is_file()
    with open_site(tmp_path, directory=directory) as again:
        assert states(again.server("nes"), U2) == [("AAAH-00125", True, True)]
    with pytest.raises(NesInvalidInput, match="uses the single layout"):
        open_site(tmp_path, layout="it-ot")


def test_it_ot_site_on_disk_with_shared_directory(tmp_path: Path) -> None:
    with open_site(tmp_path, layout=Layout.IT_OT) as site:
        site.directory.add_user("CORP\\tw-user2", PASSWORD)
        site.enrollment.enroll(U2, band("AAAH-00125"))
    assert (tmp_path / "nes" / "directory.json").is_file()
    with open_site(tmp_path) as site:  # the layout is remembered
        assert site.layout is Layout.IT_OT
        assert site.directory.authenticate("tw-user2", PASSWORD) is not None
        assert site.server("registration").users() == []
        assert [u.account for u in site.server("enrollment").users()] == [U2]


def test_it_ot_site_on_given_databases(tmp_path: Path, make_url: Callable[..., str],
                                       directory: Directory) -> None:
    urls = {"enrollment": make_url(), "registration": make_url()}
    with open_site(tmp_path, layout="it-ot", urls=urls, directory=directory) as site:
        site.enrollment.enroll(U2, band("AAAH-00125"))
        assert site.server("registration").users() == []
    with pytest.raises(NesInvalidInput, match="no server"):
        open_site(tmp_path / "other", urls={"nes": urls["enrollment"]}, layout="it-ot")


def test_memory_site() -> None:
    with memory_site("it-ot") as site:
        site.directory.add_user("CORP\\tw-user2", PASSWORD)
        site.enrollment.enroll(U2, band("AAAH-00125"))
        assert site.registration is not None and site.registration.users() == []
