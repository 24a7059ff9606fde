"""The band flows, the same assertions over three ways of reaching bands and servers.

Each test runs on the rigs of :mod:`tests.hosttools.rigs`: the band in process with the embedded
NES on SQLite and on PostgreSQL; each band served over BLE (the band management protocol, the
console operator confirming every physical step by the band's events); and the NES over HTTP.
Refusal messages are the vendor's documented ones.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from hosttools.flows.bands import PreconditionError, quiet
from hosttools.flows.delete_user_data import delete_user_data
from hosttools.flows.enroll import SignInError, enroll, reenroll, register
from hosttools.flows.fido2_keys import create_key, verify_key
from hosttools.remote_nes import RemoteNes
from nymi_device.protocol.model import AuthState, EnrollmentState
from nymi_device.protocol.nes import NesClient
from nymi_device.protocol.operator import Confirmation
from simulator.fleet import Fleet
from simulator.nes import DEFAULT_GROUP_POLICY, Nes, NesRefusal
from tests.hosttools.rigs import BANDS, Rig, ble_daemons, make_fleet, reset_band
from tests.nes.conftest import PASSWORD

NOT_FOUND = "A Nymi Band has been assigned to CORP\\tw-user2, however it cannot be found."
OTHER_USER = ("Cannot perform re-enrollment because the NES policy settings do not allow "
              "re-enrollment of a Nymi Band that is assigned to another user.")
OWN = "Allow a user to re-enroll / re-register their Nymi Band"
ANY = "Allow a user to re-enroll any active Nymi Band"
RP = "portal.example.com"


@pytest.fixture(params=["sim-sqlite", "sim-postgresql", "ble-sqlite", "http-sqlite"])
def rig_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def backend(rig_kind: str) -> str:
    """The NES database of this rig (overrides the NES tests' own parametrisation)."""
    from tests.nes.conftest import PG_BIN, PG_CTL

    kind = rig_kind.split("-")[1]
    if kind == "postgresql" and not PG_CTL.exists():
        pytest.skip(f"PostgreSQL binaries not found at {PG_BIN} (run scripts/setup.sh)")
    return kind


@pytest.fixture(scope="module")
def ble_fleet(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Fleet]:
    """One fleet on the air for the whole module (started when a BLE rig first needs it)."""
    fleet = make_fleet(tmp_path_factory.mktemp("ble-fleet"))
    with ble_daemons(fleet):
        yield fleet


@pytest.fixture
def rig(rig_kind: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[Rig]:
    kind = rig_kind.split("-")[0]
    if kind == "ble":
        fleet: Fleet = request.getfixturevalue("ble_fleet")
        made = Rig(kind, fleet)
        for serial, _ in BANDS:
            reset_band(made, serial)
    else:
        made = Rig(kind, make_fleet(tmp_path / "fleet"))
    yield made
    made.close()


@pytest.fixture
def client(rig: Rig, nes: Nes) -> NesClient:
    """The NES as the flows reach it."""
    return rig.client(nes)


def self_service(nes: Nes, own: bool = True, any_band: bool = True) -> None:
    nes.update_policy(DEFAULT_GROUP_POLICY, {OWN: own, ANY: any_band})


def table(nes: Nes, account: str) -> list[tuple[str, bool, bool]]:
    return [(b.serial, b.is_active, b.is_primary) for b in nes.user(account).bands]


def touched(rig: Rig, serial: str) -> tuple[Any, ...]:
    """What a flow touching the band would change (band time runs on for a served band)."""
    s = rig.status(serial)
    return s.screen, s.on_wrist, s.on_charger, s.enrollment, s.auth, s.band_label


def run_enroll(rig: Rig, serial: str, client: NesClient, account: str, **kw: Any) -> Any:
    with rig.open(serial) as band:
        return enroll(band, client, account, PASSWORD, quiet, **kw)


def run_reenroll(rig: Rig, serial: str, client: NesClient, account: str, **kw: Any) -> Any:
    with rig.open(serial) as band:
        return reenroll(band, client, account, PASSWORD, quiet, **kw)


def wipe(rig: Rig, serial: str) -> Any:
    with rig.open(serial) as band:
        return delete_user_data(band, quiet)


def test_the_documented_self_service_example(rig: Rig, nes: Nes, client: NesClient) -> None:
    self_service(nes)
    with rig.open("AAAH-00125") as first:
        enroll(first, client, "tw-user2", PASSWORD, quiet)
        create_key(first, client, "tw-user2", RP, quiet)
    run_enroll(rig, "ACAK-00056", client, "tw-user1")
    with rig.open("ACAK-00056") as second:
        result = reenroll(second, client, "tw-user2", PASSWORD, quiet)
        assert "Delete User Data: Delete User Data -> USER DATA DELETED" in result.steps
        assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", False, True),
                                                ("ACAK-00056", True, False)]
        assert table(nes, "CORP\\tw-user1") == []  # the previous owner's association is gone
        # The key on the old band does not move: create it again, sign in.
        created = create_key(second, client, "tw-user2", RP, quiet)
        signed = verify_key(second, client, "tw-user2", RP, quiet)
        assert signed.credential_id == created.credential_id
        assert signed.serial == "ACAK-00056" and signed.sign_count >= 1
        # Every physical step was confirmed by the band itself.
        assert {o.confirmed_by for o in second.outcomes if o.text is None} == {
            Confirmation.BAND}
    assert rig.status("ACAK-00056").auth == AuthState.AUTHENTICATED


def test_enrollment_writes_label_and_policy_to_the_band(rig: Rig, nes: Nes,
                                                         client: NesClient) -> None:
    nes.update_policy(DEFAULT_GROUP_POLICY, {"band_label": True, "haptic_feedback": False})
    result = run_enroll(rig, "AAAH-00125", client, "tw-user2", label="line 4 `ops` shift")
    assert result.label == "LINE 4 `OPS`"  # upper case, 12 characters at most
    status = rig.status("AAAH-00125")
    assert status.band_label == "LINE 4 `OPS`" and not status.haptics
    assert status.auth == AuthState.AUTHENTICATED and status.on_wrist
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]


def test_wrong_password_is_refused_before_the_band_is_touched(rig: Rig, nes: Nes,
                                                               client: NesClient) -> None:
    before = touched(rig, "AAAH-00125")
    with pytest.raises(SignInError, match="wrong password"):
        _enroll_with(rig, client, "not-it")
    assert touched(rig, "AAAH-00125") == before


def _enroll_with(rig: Rig, client: NesClient, password: str) -> Any:
    with rig.open("AAAH-00125") as band:
        return enroll(band, client, "tw-user2", password, quiet)


@pytest.mark.parametrize("where", ["on-wrist", "off-charger"])
def test_delete_user_data_refuses_without_its_preconditions(
        rig: Rig, nes: Nes, client: NesClient, where: str) -> None:
    run_enroll(rig, "AAAH-00125", client, "tw-user2")
    if where == "off-charger":
        rig.act("AAAH-00125", "remove")
    with pytest.raises(PreconditionError, match="taken off the wrist and attached to a charger"):
        wipe(rig, "AAAH-00125")
    assert rig.status("AAAH-00125").enrollment == EnrollmentState.ENROLLED


@pytest.mark.parametrize(("serial", "screens"), [
    ("AAAH-00125", ["Delete User Data", "USER DATA DELETED"]),
    ("BTWO-00001", ["SECURITY WIPE", "No User"]),
])
def test_delete_user_data_wipes_the_band_and_leaves_the_nes(
        rig: Rig, nes: Nes, client: NesClient, serial: str, screens: list[str]) -> None:
    run_enroll(rig, serial, client, "tw-user2")
    rig.act(serial, "remove")
    rig.act(serial, "charge")
    result = wipe(rig, serial)
    assert result.screens == screens and result.confirmed and result.confirmed_by == "band"
    assert rig.status(serial).enrollment == EnrollmentState.UNENROLLED
    assert table(nes, "CORP\\tw-user2") == [(serial, True, True)]  # the NES is unchanged


def test_reenrolling_after_a_wipe_without_self_service_is_refused(
        rig: Rig, nes: Nes, client: NesClient) -> None:
    run_enroll(rig, "AAAH-00125", client, "tw-user2")
    rig.act("AAAH-00125", "remove")
    rig.act("AAAH-00125", "charge")
    wipe(rig, "AAAH-00125")
    before = touched(rig, "AAAH-00125")
    with pytest.raises(NesRefusal) as refused:
        run_enroll(rig, "AAAH-00125", client, "tw-user2")
    assert str(refused.value) == NOT_FOUND
    assert touched(rig, "AAAH-00125") == before  # the band was not touched
    # Own-band self-service allows it; the same band is listed again.
    self_service(nes, own=True, any_band=False)
    run_enroll(rig, "AAAH-00125", client, "tw-user2")
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]


def test_another_users_band_needs_the_any_band_option(rig: Rig, nes: Nes,
                                                       client: NesClient) -> None:
    self_service(nes, own=True, any_band=False)
    run_enroll(rig, "AAAH-00125", client, "tw-user2")
    run_enroll(rig, "ACAK-00056", client, "tw-user1")
    with pytest.raises(NesRefusal) as refused:
        run_reenroll(rig, "ACAK-00056", client, "tw-user2")
    assert str(refused.value) == OTHER_USER
    assert rig.status("ACAK-00056").enrollment == EnrollmentState.ENROLLED  # not wiped
    assert table(nes, "CORP\\tw-user1") == [("ACAK-00056", True, True)]


def test_a_seos_band_of_another_user_is_refused_even_with_the_any_option(
        rig: Rig, nes: Nes, client: NesClient) -> None:
    self_service(nes)
    run_enroll(rig, "AAAH-00125", client, "tw-user2")
    run_enroll(rig, "SEOS-00001", client, "tw-user1")
    with pytest.raises(NesRefusal):
        run_reenroll(rig, "SEOS-00001", client, "tw-user2")
    assert rig.status("SEOS-00001").enrollment == EnrollmentState.ENROLLED
    # ...while its own user may re-enroll it.
    assert run_reenroll(rig, "SEOS-00001", client, "tw-user1").serial == "SEOS-00001"


def test_secure_nfc_band_needs_its_rfid_entry_deleted_first(rig: Rig, nes: Nes,
                                                            client: NesClient) -> None:
    self_service(nes)
    nes.update_policy(DEFAULT_GROUP_POLICY, {"enrollment_destination": "nes-and-evidian"})
    run_enroll(rig, "SNFC-00001", client, "tw-user2")
    entries = nes.eam_entries("CORP\\tw-user2")
    assert {e.kind.value for e in entries} >= {"RFID", "Wearable"}
    with pytest.raises(NesRefusal) as refused:
        run_reenroll(rig, "SNFC-00001", client, "tw-user2")
    assert "RFID" in str(refused.value) or "EAM" in str(refused.value)
    assert rig.status("SNFC-00001").enrollment == EnrollmentState.ENROLLED
    wearable = next(e for e in entries if e.kind.value == "Wearable")
    for entry in nes.eam_blacklist(wearable.id):
        nes.eam_delete(entry.id)
    run_reenroll(rig, "SNFC-00001", client, "tw-user2")
    assert table(nes, "CORP\\tw-user2") == [("SNFC-00001", True, True)]


def test_registration_records_the_band_at_the_registration_nes(
        rig: Rig, open_nes: Callable[..., Nes]) -> None:
    enrollment_nes = open_nes(name="enrollment")
    registration_nes = open_nes(name="registration")
    at_enrollment, at_registration = rig.client(enrollment_nes), rig.client(registration_nes)
    with rig.open("AAAH-00125") as band:
        enroll(band, at_enrollment, "tw-user2", PASSWORD, quiet)
        register(band, at_registration, "tw-user2", PASSWORD, quiet, enrolled_at="enrollment")
    assert table(registration_nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]
    assert registration_nes.user("CORP\\tw-user2").bands[0].registered_at_nes == "registration"


def _killed_at(step: str, rig: Rig, serial: str, flow: Callable[..., Any], client: NesClient,
               account: str) -> None:
    """Run ``flow`` in a child process that is SIGKILLed when it reaches ``step``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        def after(reached: str) -> None:
            if reached == step:
                os.kill(os.getpid(), signal.SIGKILL)
        try:
            own = RemoteNes.open(client.url) if isinstance(client, RemoteNes) else client
            with rig.open(serial) as band:
                flow(band, own, account, PASSWORD, quiet, after_step=after)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_reenroll_killed_after_the_wipe_is_recovered_by_running_it_again(
        rig: Rig, nes: Nes, client: NesClient) -> None:
    self_service(nes)
    run_enroll(rig, "AAAH-00125", client, "tw-user2")
    run_enroll(rig, "ACAK-00056", client, "tw-user1")
    nes.db.dispose()  # the child must not share the parent's connections
    _killed_at("wiped", rig, "ACAK-00056", reenroll, client, "tw-user2")
    # The band was wiped, the server was not updated.
    assert rig.status("ACAK-00056").enrollment == EnrollmentState.UNENROLLED
    assert table(nes, "CORP\\tw-user1") == [("ACAK-00056", True, True)]
    result = run_reenroll(rig, "ACAK-00056", client, "tw-user2")
    assert any("Delete User Data was already done" in line for line in result.repaired)
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", False, True),
                                            ("ACAK-00056", True, False)]
    assert table(nes, "CORP\\tw-user1") == []


def test_enroll_killed_before_the_server_was_updated_is_recovered(
        rig: Rig, nes: Nes, client: NesClient) -> None:
    nes.db.dispose()
    _killed_at("band-enrolled", rig, "AAAH-00125", enroll, client, "tw-user2")
    assert rig.status("AAAH-00125").enrollment == EnrollmentState.ENROLLED
    assert table(nes, "CORP\\tw-user2") == []
    result = run_enroll(rig, "AAAH-00125", client, "tw-user2")
    assert any("never recorded" in line for line in result.repaired)
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]
    assert rig.status("AAAH-00125").auth == AuthState.AUTHENTICATED
