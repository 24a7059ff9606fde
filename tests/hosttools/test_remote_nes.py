"""The host flows and ``nymi-band nes`` against a real NES HTTP API (uvicorn on a loopback port).

Every test serves a memory site with ``create_site_app`` on an ephemeral port in a background
thread and reaches it through :class:`hosttools.remote_nes.RemoteNes`; outcomes are compared with
the same steps run on an in-process ``Nes``.
"""

from __future__ import annotations

import functools
import inspect
import json
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from hosttools.cli import main
from hosttools.flows.bands import FlowBand
from hosttools.flows.delete_user_data import delete_user_data
from hosttools.flows.enroll import SignInError, enroll, reenroll, register
from hosttools.flows.fido2_keys import create_key, verify_key
from hosttools.nes_cli import user_properties
from hosttools.remote_nes import (
    NesCallUnavailable,
    NesCredentialsRefused,
    NesCredentialsRequired,
    RemoteNes,
)
from hosttools.site import open_flow_band
from nymi_device.errors import BandError, BandUnreachableError, UnreachableReason
from nymi_device.protocol.nes.views import settings_from_json
from simulator.fleet import Fleet
from simulator.nes import (
    DEFAULT_GROUP_POLICY,
    NOT_FOUND_MESSAGE,
    OTHER_USER_MESSAGE,
    BandFacts,
    Directory,
    EamKind,
    EamState,
    Nes,
    NesConflict,
    NesInvalidInput,
    NesRefusal,
    NotFound,
    RefusalCode,
    Site,
    memory_site,
)
from tests.hosttools.served_nes import ServedNes
from tests.nes.conftest import PASSWORD

OWN = "Allow a user to re-enroll / re-register their Nymi Band"
ANY = "Allow a user to re-enroll any active Nymi Band"
RP = "portal.example.com"
U1, U2, U3, ADMIN = "CORP\\tw-user1", "CORP\\tw-user2", "CORP\\tw-user3", "CORP\\admin"
TIMES = {"created", "updated", "at_utc"}


def quiet(title: str, detail: dict[str, Any]) -> None:
    return None


@pytest.fixture
def make_fleet(tmp_path: Path) -> Callable[[str], Fleet]:
    def make(name: str) -> Fleet:
        fleet = Fleet(tmp_path / name, durable=False)
        for serial, fixture in (("AAAH-00125", "nymi-band-3.0"), ("ACAK-00056", "nymi-band-3.0"),
                                ("SNFC-00001", "nymi-band-3.0-secure-nfc")):
            fleet.add_band(fixture, serial)
        return fleet
    return make


@pytest.fixture
def site(directory: Directory) -> Iterator[Site]:
    with memory_site(directory=directory) as served_site:
        yield served_site


@pytest.fixture
def local(directory: Directory) -> Iterator[Nes]:
    """An in-process NES to compare with."""
    with memory_site(directory=directory) as local_site:
        yield local_site.server()


@pytest.fixture
def served(site: Site) -> Iterator[ServedNes]:
    server = ServedNes(site)
    yield server
    server.stop()


@pytest.fixture
def nba(served: ServedNes) -> Iterator[RemoteNes]:
    """The Nymi Band Application's view: no administrator credentials at all."""
    with RemoteNes.open(f"{served.url}/nes") as remote:
        yield remote


@pytest.fixture
def admin(served: ServedNes) -> Iterator[RemoteNes]:
    with RemoteNes.open(f"{served.url}/nes", user=ADMIN, password=PASSWORD) as remote:
        yield remote


_OPEN: list[FlowBand] = []


@pytest.fixture(autouse=True)
def _close_bands() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


def band(fleet: Fleet, serial: str) -> FlowBand:
    """The band held open for the rest of the test (as a flow holds it)."""
    opened = open_flow_band(f"sim:{serial}", sim_dir=fleet.root)
    _OPEN.append(opened)
    return opened


def physical(target: FlowBand, action: str) -> None:
    """The test's own hands on a band a flow holds: the control API of its backend."""
    target.band.band.backend.control(action)  # type: ignore[attr-defined]


def untimed(data: Any) -> Any:
    """JSON without its timestamps (two servers never share them)."""
    if isinstance(data, dict):
        return {k: untimed(v) for k, v in data.items() if k not in TIMES}
    if isinstance(data, list):
        return [untimed(v) for v in data]
    return data


def attempt(call: Callable[[], Any]) -> Any:
    """What a call gives: its view's JSON (untimed), or its error's class and message."""
    try:
        return untimed(call().to_json())
    except BandError as exc:
        return type(exc).__name__, str(exc)


def outcome(call: Callable[[], Any]) -> tuple[type[BaseException], str]:
    with pytest.raises(Exception) as caught:
        call()
    return type(caught.value), str(caught.value)


def documented_example(nes: Nes, fleet: Fleet) -> tuple[str, int]:
    """DOMAIN 3.4: tw-user2 moves from AAAH-00125 to tw-user1's ACAK-00056, keys re-created."""
    first, second = band(fleet, "AAAH-00125"), band(fleet, "ACAK-00056")
    enroll(first, nes, "tw-user2", PASSWORD, quiet)
    create_key(first, nes, "tw-user2", RP, quiet)
    enroll(second, nes, "tw-user1", PASSWORD, quiet)
    result = reenroll(second, nes, "tw-user2", PASSWORD, quiet)
    create_key(second, nes, "tw-user2", RP, quiet)
    signed = verify_key(second, nes, "tw-user2", RP, quiet)
    return result.action, signed.sign_count


def test_the_documented_self_service_example_ends_as_in_process(
        make_fleet: Callable[[str], Fleet], local: Nes, nba: RemoteNes,
        admin: RemoteNes) -> None:
    local.update_policy(DEFAULT_GROUP_POLICY, {OWN: True, ANY: True})
    admin.update_policy(DEFAULT_GROUP_POLICY, {OWN: True, ANY: True})
    expected = documented_example(local, make_fleet("local"))
    got = documented_example(nba, make_fleet("remote"))
    assert got[0] == expected[0] == "self-service-band-of-another-user" and got[1] >= 1
    for account in (U2, U1):
        assert untimed(admin.user(account).to_json()) == untimed(local.user(account).to_json())
    assert [(b.serial, b.is_active, b.is_primary) for b in admin.user(U2).bands] == [
        ("AAAH-00125", False, True), ("ACAK-00056", True, False)]
    assert admin.user(U1).bands == ()
    assert ([(k.serial, k.rp_id) for k in admin.fido2_keys(U2)]
            == [(k.serial, k.rp_id) for k in local.fido2_keys(U2)])
    # The NBA's calls were made as the user, never as an administrator.
    actors = {e.actor for e in admin.audit(table="assignments")}
    assert actors == {U1, U2}


def test_refusals_arrive_with_the_documented_messages(
        make_fleet: Callable[[str], Fleet], local: Nes, nba: RemoteNes,
        admin: RemoteNes) -> None:
    fleet = make_fleet("fleet")
    own = band(fleet, "AAAH-00125")
    enroll(own, nba, "tw-user2", PASSWORD, quiet)
    physical(own, "remove")
    physical(own, "charge")
    delete_user_data(own, quiet)
    before = own.status()
    with pytest.raises(NesRefusal) as refused:
        enroll(own, nba, "tw-user2", PASSWORD, quiet)
    assert str(refused.value) == NOT_FOUND_MESSAGE.format(user=U2)
    assert refused.value.code is RefusalCode.NOT_FOUND
    assert own.status() == before  # refused before the band was touched

    admin.update_policy(DEFAULT_GROUP_POLICY, {OWN: True})
    taken = band(fleet, "ACAK-00056")
    enroll(taken, nba, "tw-user1", PASSWORD, quiet)
    with pytest.raises(NesRefusal) as refused:
        reenroll(taken, nba, "tw-user2", PASSWORD, quiet)
    assert str(refused.value) == OTHER_USER_MESSAGE
    assert taken.status().enrollment.value == "enrolled"  # not wiped

    # The server's own 403 (an enrollment posted without asking first) carries the same
    # class, message, code and context as the in-process refusal.
    local.update_policy(DEFAULT_GROUP_POLICY, {OWN: True})
    facts = BandFacts("ACAK-00056", device_id=admin.band("ACAK-00056").device_id)
    local.enroll(U1, facts)
    with pytest.raises(NesRefusal) as in_process:
        local.enroll(U2, facts)
    with pytest.raises(NesRefusal) as over_http:
        nba.enroll(U2, facts)
    assert str(over_http.value) == str(in_process.value) == OTHER_USER_MESSAGE
    assert over_http.value.code is in_process.value.code is RefusalCode.OTHER_USER
    assert over_http.value.context == in_process.value.context


def test_errors_keep_their_class_and_message(local: Nes, nba: RemoteNes,
                                             admin: RemoteNes) -> None:
    remote = admin
    for nes in (local, remote):
        nes.create_policy("Night shift", values={"haptic_feedback": False})
    calls: list[Callable[[Nes], Any]] = [
        lambda n: n.user("CORP\\nobody"),
        lambda n: n.band("ZZZZ-00001"),
        lambda n: n.policy("No such policy"),
        lambda n: n.eam_delete(999),
        lambda n: n.create_policy("Night shift"),
        lambda n: n.delete_policy(DEFAULT_GROUP_POLICY),
        lambda n: n.update_policy(DEFAULT_GROUP_POLICY, {"nba_idle_logout_min": 0}),
        lambda n: n.update_policy(DEFAULT_GROUP_POLICY, {"no such option": True}),
        lambda n: n.create_policy("Odd", "bogus"),
        lambda n: n.activate_group_policy("Night shift"),
    ]
    got = [outcome(functools.partial(call, remote)) for call in calls]
    assert got == [outcome(functools.partial(call, local)) for call in calls]
    assert {kind for kind, _ in got} == {NotFound, NesConflict, NesInvalidInput}
    # The Nymi Band Application's calls are only for a signed-in user.
    with pytest.raises(NesCredentialsRequired, match="tw-user2 is not signed in"):
        nba.check_enrollment("tw-user2", "AAAH-00125")


def test_a_wrong_password_is_one_clear_error(
        make_fleet: Callable[[str], Fleet], local: Nes, nba: RemoteNes, served: ServedNes,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    target = band(make_fleet("fleet"), "AAAH-00125")
    before = target.status()
    with pytest.raises(SignInError) as remote_error:
        enroll(target, nba, "tw-user2", "not-it", quiet)
    with pytest.raises(SignInError) as local_error:
        enroll(band(make_fleet("local"), "AAAH-00125"), local, "tw-user2", "not-it", quiet)
    assert str(remote_error.value) == str(local_error.value)
    assert "wrong password" in str(remote_error.value)
    assert target.status() == before

    with RemoteNes.open(f"{served.url}/nes", user=ADMIN, password="not-it") as wrong:
        with pytest.raises(NesCredentialsRefused) as refused:
            wrong.policies()
    message = str(refused.value)
    assert "refused the administrator credentials of CORP\\admin" in message
    assert "\n" not in message and "not-it" not in message

    monkeypatch.setenv("NYMI_NES_USER", ADMIN)
    monkeypatch.setenv("NYMI_NES_PASSWORD", "not-it")
    code = main(["--nes", f"{served.url}/nes", "nes", "user", "show", "tw-user2"])
    err = capsys.readouterr().err
    assert code == 1 and err.startswith("error: ") and err.count("\n") == 1
    assert "refused the administrator credentials" in err


def test_a_server_that_is_down_is_one_line_unreachable(
        site: Site, capsys: pytest.CaptureFixture[str]) -> None:
    probe = socket.socket()
    probe.bind(("127.0.0.1", 0))
    dead = f"http://127.0.0.1:{probe.getsockname()[1]}/nes"
    probe.close()
    with pytest.raises(BandUnreachableError) as down:
        RemoteNes.open(dead)
    assert down.value.reason is UnreachableReason.TRANSPORT_FAILED
    assert str(down.value).startswith(f"cannot reach the NES at {dead}: ")
    assert "\n" not in str(down.value)
    code = main(["--nes", dead, "nes", "user", "show", "tw-user2"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and dead in err

    # A server that stops between two calls.
    server = ServedNes(site)
    try:
        remote = RemoteNes.open(f"{server.url}/nes")
        assert remote.directory.authenticate("tw-user2", PASSWORD) is not None
    finally:
        server.stop()
    with pytest.raises(BandUnreachableError) as stopped:
        remote.check_enrollment("tw-user2", "AAAH-00125")
    assert stopped.value.reason is UnreachableReason.TRANSPORT_FAILED
    assert "\n" not in str(stopped.value)
    remote.close()  # signing out of a stopped server is not an error


def test_the_cli_shows_user_properties_over_http(
        make_fleet: Callable[[str], Fleet], site: Site, served: ServedNes,
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    fleet = make_fleet("fleet")
    url = f"{served.url}/nes"
    # The user's own enrollment from the command line needs no administrator.
    monkeypatch.delenv("NYMI_NES_USER", raising=False)
    monkeypatch.delenv("NYMI_NES_PASSWORD", raising=False)
    code = main(["--sim-dir", str(fleet.root), "--target", "sim:AAAH-00125", "--nes", url,
                 "enroll", "--user", "tw-user2", "--password", PASSWORD, "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["action"] == "enroll" and json.loads(out)["nes"] == "nes"

    code = main(["--nes", url, "nes", "user", "show", "tw-user2", "--json"])
    err = capsys.readouterr().err
    assert code == 1 and err.count("\n") == 1 and "NYMI_NES_USER" in err

    expected = user_properties(site.server(), "tw-user2")
    monkeypatch.setenv("NYMI_NES_USER", ADMIN)
    monkeypatch.setenv("NYMI_NES_PASSWORD", PASSWORD)
    code = main(["--nes", url, "nes", "user", "show", "tw-user2", "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out) == expected
    assert [(b["serial"], b["is_active"], b["is_primary"]) for b in expected["bands"]] == [
        ("AAAH-00125", True, True)]

    # Credentials in the URL; the password never appears in what is printed.
    monkeypatch.delenv("NYMI_NES_USER")
    monkeypatch.delenv("NYMI_NES_PASSWORD")
    with_userinfo = url.replace("http://", "http://CORP%5Cadmin:Passw0rd%21@")
    code = main(["--nes", with_userinfo, "nes", "band", "suspend", "AAAH-00125", "--yes",
                 "--json"])
    out, err = capsys.readouterr()
    assert code == 0, err
    assert json.loads(out)["bands"][0]["is_active"] is False
    code = main(["--nes", with_userinfo, "nes", "user", "add", "CORP\\new", "--password", "pw"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot add directory users" in err and "Passw0rd" not in err


def test_administrator_calls_match_in_process(
        local: Nes, nba: RemoteNes, admin: RemoteNes) -> None:
    remote = admin
    snfc = BandFacts("SNFC-00001", device_id="d-snfc", secure_nfc=True, nfc_id="04A1B2C3D4E5F6")
    assert nba.directory.authenticate("tw-user2", PASSWORD) is not None
    results: dict[str, list[Any]] = {"local": [], "remote": []}
    for where, nes, user_side in (("local", local, local), ("remote", remote, nba)):
        out = results[where]
        nes.update_policy(DEFAULT_GROUP_POLICY, {"enrollment_destination": "nes-and-evidian"})
        out.append(user_side.enroll(U2, snfc).to_json())
        entries = nes.eam_entries(U2)
        out.append([e.to_json() for e in entries])
        wearable = next(e for e in entries if e.kind is EamKind.WEARABLE)
        out.append([e.to_json() for e in nes.eam_blacklist(wearable.id)])
        out += [nes.eam_delete(e.id).to_json() for e in nes.eam_entries(U2)
                if e.state is EamState.BLACKLISTED]
        out.append([e.to_json() for e in nes.eam_entries(U2, include_deleted=False)])
        out.append(nes.create_policy("Night shift", values={"haptic_feedback": False}).to_json())
        out.append(nes.set_individual_policy(U2, "Night shift").to_json())
        out.append(nes.effective_policy(U2).to_json())
        out.append(nes.policy_status(U2).value)
        out.append(user_side.nba_sign_in(U2, "SNFC-00001").value)
        out.append(nes.policy_status(U2).value)
        out.append([(a, s.value) for a, s in nes.policy_statuses()])
        out.append([(a, s.value) for a, s in nes.policy_statuses("Night shift")])
        out.append(user_side.record_fido2_key(U2, "SNFC-00001", RP, b"cred", b"\xa1").to_json())
        out.append([k.to_json() for k in nes.fido2_keys()])
        nes.delete_fido2_key(b"cred")
        out.append([k.to_json() for k in nes.fido2_keys(U2)])
        out.append(nes.create_policy("Temp", "group", copy_of=DEFAULT_GROUP_POLICY).to_json())
        out.append(nes.activate_group_policy("Temp").to_json())
        out.append(nes.activate_group_policy(DEFAULT_GROUP_POLICY).to_json())
        nes.delete_policy("Temp")
        out.append(attempt(functools.partial(nes.issue_temporary_band, "SNFC-00001")))
        out.append(attempt(functools.partial(nes.restore_original, "SNFC-00001")))
        out.append([p.to_json() for p in nes.policies()])
        out.append(nes.suspend("SNFC-00001", notes="left at home").to_json())
        out.append(nes.update_band("SNFC-00001", is_active=True).to_json())
        out.append(nes.band("SNFC-00001").to_json())
        out.append([b.to_json() for b in nes.bands("SNFC")])
        out.append(len(nes.users("tw")))
        out.append(nes.disconnect("SNFC-00001").to_json())
        out.append(nes.reassign("SNFC-00001", U1).to_json())
        out.append(nes.replace_lost_band("SNFC-00001").to_json())
        # The order of the rows one transaction writes is not defined: compare them sorted.
        out.append(sorted((e.table, e.op, e.key) for e in nes.audit(account=U2)))
    assert untimed(results["remote"]) == untimed(results["local"])


def test_it_ot_registration_over_http(make_fleet: Callable[[str], Fleet],
                                      directory: Directory) -> None:
    with memory_site("it-ot", directory=directory) as site:
        server = ServedNes(site)
        try:
            with RemoteNes.open(f"{server.url}/enrollment") as enrollment, \
                    RemoteNes.open(f"{server.url}/registration/") as registration:
                assert (enrollment.name, registration.name) == ("enrollment", "registration")
                target = band(make_fleet("fleet"), "AAAH-00125")
                enroll(target, enrollment, "tw-user2", PASSWORD, quiet)
                done = register(target, registration, "tw-user2", PASSWORD, quiet,
                                enrolled_at="enrollment")
        finally:
            server.stop()
        assert done.action == "enroll"
        assert site.registration is not None
        row = site.registration.user(U2).bands[0]
        assert (row.enrolled_at_nes, row.registered_at_nes) == ("enrollment", "registration")
        assert site.enrollment.user(U2).bands[0].enrolled_at_nes == "enrollment"


def test_sign_in_imports_the_user_and_tokens_expire(directory: Directory) -> None:
    with memory_site(directory=directory) as site:
        server = ServedNes(site, token_idle_seconds=0.3)
        try:
            url = f"{server.url}/nes"
            # PUT /api/v1/me: the NBA's sign-in imports the caller from the directory.
            assert httpx.put(f"{url}/api/v1/me").status_code == 401
            first = httpx.put(f"{url}/api/v1/me", auth=("tw-user3", PASSWORD))
            again = httpx.put(f"{url}/api/v1/me", auth=("tw-user3", PASSWORD))
            assert first.status_code == again.status_code == 200
            assert first.json()["account"] == U3 and first.json()["bands"] == []
            assert again.json()["created"] == first.json()["created"]
            assert [e.actor for e in site.server().audit(table="users")] == [U3]

            with RemoteNes.open(url, user=ADMIN, password=PASSWORD) as remote:
                user = remote.directory.authenticate("tw-user1", PASSWORD)
                assert user is not None and (user.account, user.is_admin) == (U1, False)
                assert remote.ensure_user("tw-user1").account == U1
                assert remote.resolve_account("tw-user1") == U1
                assert remote.policies()  # the administrator signs in on first use
                time.sleep(0.5)
                assert remote.policies()  # … and again once the token went idle
                with pytest.raises(NesCredentialsRefused, match="has expired; sign in again"):
                    remote.check_enrollment("tw-user1", "AAAH-00125")
            with pytest.raises(NotFound, match=f"no NES at {server.url}/other; this server "
                               f"has: {server.url}/nes"):
                RemoteNes.open(f"{server.url}/other")
        finally:
            server.stop()


def test_views_rebuild_from_their_json(local: Nes) -> None:
    local.update_policy(DEFAULT_GROUP_POLICY, {"enrollment_destination": "nes-and-evidian"})
    facts = BandFacts("SNFC-00001", device_id="d", secure_nfc=True, nfc_id="04A1B2C3D4E5F6")
    check = local.check_enrollment(U2, "SNFC-00001")
    result = local.enroll(U2, facts)
    key = local.record_fido2_key(U2, "SNFC-00001", RP, b"\x01\x02credential", b"\xa5\x01\x02")
    views: list[Any] = [check, result, result.user, local.band("SNFC-00001"), key,
                        *local.eam_entries(U2), *local.eam_blacklist(result.eam_entries[0].id),
                        *local.policies(), *local.audit()]
    assert result.eam_entries and any(v.before for v in local.audit())
    for view in views:
        assert type(view).from_json(json.loads(json.dumps(view.to_json()))) == view
    assert settings_from_json(result.settings.to_json()) == result.settings


def test_remote_methods_have_the_signatures_of_nes() -> None:
    def public(cls: type) -> set[str]:
        return {n for n, v in vars(cls).items() if callable(v) and not n.startswith("_")}

    shared = public(RemoteNes) & public(Nes) - {"open"}
    for name in shared:
        assert (str(inspect.signature(getattr(RemoteNes, name)))
                == str(inspect.signature(getattr(Nes, name)))), name
    # What the HTTP API does not offer: adding a user who is not in the directory.
    assert public(Nes) - public(RemoteNes) == {"add_user"}
    # Nothing beyond it: both implement NesService (mypy checks that in hosttools.site.open_nes).
    assert public(RemoteNes) - public(Nes) == set()
    with RemoteNes("http://127.0.0.1:9/nes") as offline, pytest.raises(NesCallUnavailable):
        offline.directory.add_user("CORP\\x", "pw")
