"""Every rule, on a situation built through the flows, diagnosed through ``nymi-band diagnose``.

Each test asserts the finding, the evidence it rests on, and that no other rule fires.
"""

from __future__ import annotations

from tests.hosttools.diagnose.situations import (
    RP_ID,
    Site,
    evidence,
    only_finding,
    rules_of,
)

OTHER_USER = ("Cannot perform re-enrollment because the NES policy settings do not allow "
              "re-enrollment of a Nymi Band that is assigned to another user.")


def test_a_healthy_band_yields_no_finding(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    code, report = site.diagnose("AAAH-00125")
    assert (code, report["findings"]) == (0, [])
    assert report["sections"]["band"]["data"]["status"]["enrollment"] == "enrolled"
    assert report["sections"]["server"]["data"]["owner"]["account"] == "CORP\\tw-user2"
    assert report["sections"]["fido2"]["data"]["credential_count"] == 0


def test_the_seed_scenario_key_not_recreated_then_recreated(site: Site) -> None:
    site.self_service()
    site.enroll("AAAH-00125", "tw-user2")
    site.create_key("AAAH-00125", "tw-user2")
    site.enroll("ACAK-00056", "tw-user1")
    site.reenroll("ACAK-00056", "tw-user2")

    _, report = site.diagnose("ACAK-00056")
    finding = only_finding(report, "fido2-key-missing")
    assert finding["title"] == ("CORP\\tw-user2's security key for portal.example.com is not "
                                "on ACAK-00056 (created on AAAH-00125)")
    assert "must create the FIDO2 security key again on the new band" in finding["fix"]
    facts = evidence(finding)
    assert facts["fido2: credentials on the band"] == []
    [recorded] = facts["server: recorded keys"]
    assert (recorded["rp_id"], recorded["serial"]) == (RP_ID, "AAAH-00125")

    site.create_key("ACAK-00056", "tw-user2")
    code, report = site.diagnose("ACAK-00056")
    assert (code, report["findings"]) == (0, [])


def test_band_wiped_but_the_nes_association_remains(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.delete_user_data("AAAH-00125")
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "wiped-but-associated")
    assert finding["severity"] == "error"
    assert ("A Nymi Band has been assigned to CORP\\tw-user2, however it cannot be found."
            in finding["detail"])
    assert "Disconnect" in finding["fix"]
    assert evidence(finding) == {"band: enrollment": "unenrolled",
                                 "server: band owner": "CORP\\tw-user2",
                                 "server: owner's self-service (own band)": False}


def test_band_enrolled_but_unknown_to_the_nes(site: Site) -> None:
    site.enroll_interrupted("AAAH-00125", "tw-user2", after="band-enrolled")
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "enrolled-unknown-to-nes")
    assert evidence(finding) == {"band: enrollment": "enrolled", "server: band record": None,
                                 "server: band owner": None}
    assert "Delete User Data" in finding["fix"]


def test_band_of_another_user_while_the_policy_forbids_it(site: Site) -> None:
    site.enroll("ACAK-00056", "tw-user2")
    site.enroll("AAAH-00125", "tw-user1")
    _, report = site.diagnose("AAAH-00125", "--user", "tw-user2")
    finding = only_finding(report, "other-users-band")
    assert OTHER_USER in finding["detail"]
    assert "Allow a user to re-enroll any active Nymi Band" in finding["fix"]
    assert evidence(finding) == {
        "server: band owner": "CORP\\tw-user1", "server: asking user": "CORP\\tw-user2",
        "server: CORP\\tw-user2: Allow a user to re-enroll any active Nymi Band": False}
    # The owner herself asking: nothing wrong.
    code, report = site.diagnose("AAAH-00125", "--user", "tw-user1")
    assert (code, report["findings"]) == (0, [])


def test_seos_band_of_another_user(site: Site) -> None:
    site.self_service()
    site.enroll("ACAK-00056", "tw-user2")
    site.enroll("SEOS-00001", "tw-user1")
    _, report = site.diagnose("SEOS-00001", "--user", "tw-user2")
    finding = only_finding(report, "seos-other-user")
    assert evidence(finding)["server: seos_enabled"] is True
    assert "disassociates" in finding["fix"]


def test_secure_nfc_entry_not_blacklisted_and_deleted(site: Site) -> None:
    site.self_service()
    site.policy(enrollment_destination="nes-and-evidian")
    site.enroll("SNFC-00001", "tw-user2")
    site.delete_user_data("SNFC-00001")
    _, report = site.diagnose("SNFC-00001")
    finding = only_finding(report, "secure-nfc-entry")
    facts = evidence(finding)
    assert facts.pop("band: enrollment") == "unenrolled"
    assert sorted(facts.values()) == ["Active", "Active"]  # the RFID and Wearable entries
    assert "blacklist" in finding["fix"] and "delete both" in finding["fix"]
    # Blacklisting the Wearable and deleting both clears it.
    wearable = next(e for e in site.admin("eam_entries", "tw-user2") if e.kind.value == "Wearable")
    for entry in site.admin("eam_blacklist", wearable.id):
        if entry.kind.value in ("RFID", "Wearable"):
            site.admin("eam_delete", entry.id)
    _, report = site.diagnose("SNFC-00001")
    assert "secure-nfc-entry" not in rules_of(report)


def test_policy_status_pending(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.policy(haptic_feedback=False)
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "policy-pending")
    assert evidence(finding)["server: policy status"] == "Pending"
    assert "signs in to the Nymi Band Application" in finding["fix"]


def test_firmware_older_than_configurable_liveness(site: Site) -> None:
    site.enroll("BTWO-00001", "tw-user2")
    site.admin("set_individual_policy", "tw-user2", "Liveness Detection Disabled")
    _, report = site.diagnose("BTWO-00001")
    finding = only_finding(report, "firmware-too-old")
    assert evidence(finding) == {"band: firmware_version": "1.9.7",
                                 "server: Liveness Detection": False,
                                 "server: policy status": "Pending"}


def test_fingerprint_lockout(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.fail_authentication("AAAH-00125", 10)
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "lockout")
    assert evidence(finding)["band: locked_out"] is True
    assert "Delete User Data clears the lockout" in finding["fix"]


def test_repeated_no_match(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.fail_authentication("AAAH-00125", 4)
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "repeated-no-match")
    facts = evidence(finding)
    assert facts["band: fingerprint_failures"] == 4
    assert "NO MATCH" in facts["events: recent failure screens"]
    assert "70% isopropyl" in finding["fix"]


def test_repeated_no_ecg(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.fail_authentication("AAAH-00125", 4, match=True, ecg=False)
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "repeated-no-ecg")
    facts = evidence(finding)
    assert facts["band: liveness_failures"] == 4
    assert "NO ECG" in facts["events: recent failure screens"]
    assert "Liveness Detection Disabled" in finding["fix"]


def test_battery_critical(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.act("AAAH-00125", "battery", percent=2)
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "battery-critical")
    assert evidence(finding)["band: battery_pct"] <= 3
    assert "at least 30 minutes" in finding["fix"]


def test_suspended_band(site: Site) -> None:
    site.enroll("AAAH-00125", "tw-user2")
    site.admin("suspend", "AAAH-00125", notes="Left at home")
    _, report = site.diagnose("AAAH-00125")
    finding = only_finding(report, "suspended")
    assert evidence(finding) == {"server: is_active": False, "server: is_primary": True,
                                 "server: notes": "Left at home",
                                 "server: owner's active band": None}
