"""The band flows against simulated bands and a real NES (embedded SQLite and PostgreSQL).

DOMAIN.md 1.6, 2.2, 2.7, 3.2-3.4 are the specification; refusal messages are the documented ones.
"""

from __future__ import annotations

import os
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hosttools.flows.bands import SimulatedBand
from hosttools.flows.delete_user_data import PreconditionError, delete_user_data
from hosttools.flows.enroll import SignInError, enroll, reenroll, register
from hosttools.flows.fido2_keys import create_key, verify_key
from simulator.fleet import Fleet
from simulator.nes import DEFAULT_GROUP_POLICY, Nes, NesRefusal
from tests.nes.conftest import PASSWORD

NOT_FOUND = "A Nymi Band has been assigned to CORP\\tw-user2, however it cannot be found."
OTHER_USER = ("Cannot perform re-enrollment because the NES policy settings do not allow "
              "re-enrollment of a Nymi Band that is assigned to another user.")
OWN = "Allow a user to re-enroll / re-register their Nymi Band"
ANY = "Allow a user to re-enroll any active Nymi Band"


def quiet(title: str, detail: dict[str, Any]) -> None:
    return None


@pytest.fixture
def fleet(tmp_path: Path) -> Fleet:
    fleet = Fleet(tmp_path / "fleet", durable=False)
    for serial, fixture in (("AAAH-00125", "nymi-band-3.0"), ("ACAK-00056", "nymi-band-3.0"),
                            ("SEOS-00001", "nymi-band-3.0-seos"),
                            ("SNFC-00001", "nymi-band-3.0-secure-nfc"),
                            ("BTWO-00001", "nymi-band-2.0")):
        fleet.add_band(fixture, serial)
    return fleet


def band(fleet: Fleet, serial: str) -> SimulatedBand:
    return SimulatedBand(serial, fleet.root)


def self_service(nes: Nes, own: bool = True, any_band: bool = True) -> None:
    nes.update_policy(DEFAULT_GROUP_POLICY, {OWN: own, ANY: any_band})


def table(nes: Nes, account: str) -> list[tuple[str, bool, bool]]:
    return [(b.serial, b.is_active, b.is_primary) for b in nes.user(account).bands]


def test_the_documented_self_service_example(fleet: Fleet, nes: Nes) -> None:
    self_service(nes)
    first, second = band(fleet, "AAAH-00125"), band(fleet, "ACAK-00056")
    enroll(first, nes, "tw-user2", PASSWORD, quiet)
    create_key(first, nes, "tw-user2", "portal.example.com", quiet)
    enroll(second, nes, "tw-user1", PASSWORD, quiet)
    result = reenroll(second, nes, "tw-user2", PASSWORD, quiet)
    assert "Delete User Data: Delete User Data -> USER DATA DELETED" in result.steps
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", False, True),
                                            ("ACAK-00056", True, False)]
    assert table(nes, "CORP\\tw-user1") == []  # the previous owner's association is gone
    # The key on the old band does not move (DOMAIN 3.4 step 4): create it again, sign in.
    create_key(second, nes, "tw-user2", "portal.example.com", quiet)
    signed = verify_key(second, nes, "tw-user2", "portal.example.com", quiet)
    assert signed.serial == "ACAK-00056" and signed.sign_count >= 1
    assert second.state()["state"]["auth"] == "authenticated"


def test_enrollment_writes_label_and_policy_to_the_band(fleet: Fleet, nes: Nes) -> None:
    nes.update_policy(DEFAULT_GROUP_POLICY, {"band_label": True, "haptic_feedback": False})
    result = enroll(band(fleet, "AAAH-00125"), nes, "tw-user2", PASSWORD, quiet,
                    label="line 4 `ops` shift")
    assert result.label == "LINE 4 `OPS`"  # upper case, 12 characters at most (DOMAIN 2.3)
    with fleet.open_band("AAAH-00125", save=False) as emulated:
        assert emulated.user.band_label == "LINE 4 `OPS`"
        assert emulated.user.policy is not None and not emulated.user.policy.haptics
        assert emulated.is_authenticated
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]


def test_wrong_password_is_refused_before_the_band_is_touched(fleet: Fleet, nes: Nes) -> None:
    before = band(fleet, "AAAH-00125").state()
    with pytest.raises(SignInError, match="wrong password"):
        enroll(band(fleet, "AAAH-00125"), nes, "tw-user2", "not-it", quiet)
    assert band(fleet, "AAAH-00125").state()["state"] == before["state"]


@pytest.mark.parametrize("where", ["on-wrist", "off-charger"])
def test_delete_user_data_refuses_without_its_preconditions(
        fleet: Fleet, nes: Nes, where: str) -> None:
    target = band(fleet, "AAAH-00125")
    enroll(target, nes, "tw-user2", PASSWORD, quiet)
    if where == "off-charger":
        target.physical("remove")
    with pytest.raises(PreconditionError, match="taken off the wrist and attached to a charger"):
        delete_user_data(target, quiet)
    assert target.state()["state"]["enrollment"] == "enrolled"


@pytest.mark.parametrize(("serial", "screens"), [
    ("AAAH-00125", ["Delete User Data", "USER DATA DELETED"]),
    ("BTWO-00001", ["SECURITY WIPE", "No User"]),
])
def test_delete_user_data_wipes_the_band_and_leaves_the_nes(
        fleet: Fleet, nes: Nes, serial: str, screens: list[str]) -> None:
    target = band(fleet, serial)
    enroll(target, nes, "tw-user2", PASSWORD, quiet)
    target.physical("remove")
    target.physical("charge")
    result = delete_user_data(target, quiet)
    assert result.screens == screens and result.confirmed
    assert table(nes, "CORP\\tw-user2") == [(serial, True, True)]  # NES unchanged (1.6 step 5)


def test_reenrolling_after_a_wipe_without_self_service_is_refused(
        fleet: Fleet, nes: Nes) -> None:
    target = band(fleet, "AAAH-00125")
    enroll(target, nes, "tw-user2", PASSWORD, quiet)
    target.physical("remove")
    target.physical("charge")
    delete_user_data(target, quiet)
    before = target.state()["state"]
    with pytest.raises(NesRefusal) as refused:
        enroll(target, nes, "tw-user2", PASSWORD, quiet)
    assert str(refused.value) == NOT_FOUND
    assert target.state()["state"] == before  # the band was not touched
    # Own-band self-service allows it; the same band is listed again.
    self_service(nes, own=True, any_band=False)
    target.physical("uncharge")
    enroll(target, nes, "tw-user2", PASSWORD, quiet)
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]


def test_another_users_band_needs_the_any_band_option(fleet: Fleet, nes: Nes) -> None:
    self_service(nes, own=True, any_band=False)
    enroll(band(fleet, "AAAH-00125"), nes, "tw-user2", PASSWORD, quiet)
    taken = band(fleet, "ACAK-00056")
    enroll(taken, nes, "tw-user1", PASSWORD, quiet)
    with pytest.raises(NesRefusal) as refused:
        reenroll(taken, nes, "tw-user2", PASSWORD, quiet)
    assert str(refused.value) == OTHER_USER
    assert taken.state()["state"]["enrollment"] == "enrolled"  # not wiped
    assert table(nes, "CORP\\tw-user1") == [("ACAK-00056", True, True)]


def test_a_seos_band_of_another_user_is_refused_even_with_the_any_option(
        fleet: Fleet, nes: Nes) -> None:
    self_service(nes)
    enroll(band(fleet, "AAAH-00125"), nes, "tw-user2", PASSWORD, quiet)
    seos = band(fleet, "SEOS-00001")
    enroll(seos, nes, "tw-user1", PASSWORD, quiet)
    with pytest.raises(NesRefusal):
        reenroll(seos, nes, "tw-user2", PASSWORD, quiet)
    assert seos.state()["state"]["enrollment"] == "enrolled"
    # ...while its own user may re-enroll it.
    result = reenroll(seos, nes, "tw-user1", PASSWORD, quiet)
    assert result.serial == "SEOS-00001"


def test_secure_nfc_band_needs_its_rfid_entry_deleted_first(fleet: Fleet, nes: Nes) -> None:
    self_service(nes)
    nes.update_policy(DEFAULT_GROUP_POLICY, {"enrollment_destination": "nes-and-evidian"})
    secure = band(fleet, "SNFC-00001")
    enroll(secure, nes, "tw-user2", PASSWORD, quiet)
    entries = nes.eam_entries("CORP\\tw-user2")
    assert {e.kind.value for e in entries} >= {"RFID", "Wearable"}
    with pytest.raises(NesRefusal) as refused:
        reenroll(secure, nes, "tw-user2", PASSWORD, quiet)
    assert "RFID" in str(refused.value) or "EAM" in str(refused.value)
    assert secure.state()["state"]["enrollment"] == "enrolled"
    wearable = next(e for e in entries if e.kind.value == "Wearable")
    for entry in nes.eam_blacklist(wearable.id):
        nes.eam_delete(entry.id)
    reenroll(secure, nes, "tw-user2", PASSWORD, quiet)
    assert table(nes, "CORP\\tw-user2") == [("SNFC-00001", True, True)]


def test_registration_records_the_band_at_the_registration_nes(
        fleet: Fleet, open_nes: Callable[..., Nes]) -> None:
    enrollment_nes = open_nes(name="enrollment")
    registration_nes = open_nes(name="registration")
    target = band(fleet, "AAAH-00125")
    enroll(target, enrollment_nes, "tw-user2", PASSWORD, quiet)
    register(target, registration_nes, "tw-user2", PASSWORD, quiet, enrolled_at="enrollment")
    assert table(registration_nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]
    assert registration_nes.user("CORP\\tw-user2").bands[0].registered_at_nes == "registration"


def _killed_at(step: str, flow: Callable[..., Any], *args: Any, **kwargs: Any) -> None:
    """Run ``flow`` in a child process that is SIGKILLed when it reaches ``step``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child never returns
        def after(reached: str) -> None:
            if reached == step:
                os.kill(os.getpid(), signal.SIGKILL)
        try:
            flow(*args, after_step=after, **kwargs)
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def test_reenroll_killed_after_the_wipe_is_recovered_by_running_it_again(
        fleet: Fleet, nes: Nes) -> None:
    self_service(nes)
    enroll(band(fleet, "AAAH-00125"), nes, "tw-user2", PASSWORD, quiet)
    taken = band(fleet, "ACAK-00056")
    enroll(taken, nes, "tw-user1", PASSWORD, quiet)
    nes.db.dispose()  # the child must not share the parent's connections
    _killed_at("wiped", reenroll, taken, nes, "tw-user2", PASSWORD, quiet)
    # The band was wiped, the server was not updated.
    assert taken.state()["state"]["enrollment"] == "unenrolled"
    assert table(nes, "CORP\\tw-user1") == [("ACAK-00056", True, True)]
    result = reenroll(taken, nes, "tw-user2", PASSWORD, quiet)
    assert any("Delete User Data was already done" in line for line in result.repaired)
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", False, True),
                                            ("ACAK-00056", True, False)]
    assert table(nes, "CORP\\tw-user1") == []


def test_enroll_killed_before_the_server_was_updated_is_recovered(
        fleet: Fleet, nes: Nes) -> None:
    target = band(fleet, "AAAH-00125")
    nes.db.dispose()
    _killed_at("band-enrolled", enroll, target, nes, "tw-user2", PASSWORD, quiet)
    assert target.state()["state"]["enrollment"] == "enrolled"
    assert table(nes, "CORP\\tw-user2") == []
    result = enroll(target, nes, "tw-user2", PASSWORD, quiet)
    assert any("never recorded" in line for line in result.repaired)
    assert table(nes, "CORP\\tw-user2") == [("AAAH-00125", True, True)]
    assert target.state()["state"]["auth"] == "authenticated"
