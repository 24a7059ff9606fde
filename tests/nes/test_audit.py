"""The audit trail (DOMAIN 8.4, 10.4): a row for every create / update / delete, in the same
transaction, kept after Disconnect."""

from __future__ import annotations

import pytest

from nymi_device.protocol.text import b64url
from simulator.nes import Nes, NesRefusal
from simulator.nes.models import AUDITED_TABLES
from tests.nes.helpers import U1, U2, band, self_service


def _ops(nes: Nes, **filters: str) -> list[tuple[str, str, str]]:
    return [(e.table, e.op, e.key) for e in nes.audit(**filters)]


def test_installation_is_audited(nes: Nes) -> None:
    assert sorted(_ops(nes)) == [
        ("policies", "create", "Corporate Credentials Authentication"),
        ("policies", "create", "Default Settings Set"),
        ("policies", "create", "Liveness Detection Disabled")]


def test_every_change_is_audited_and_survives_disconnect(nes: Nes) -> None:
    start = len(nes.audit())
    nes.enroll(U2, band("AAAH-00125"), actor="CORP\\tw-user2")
    nes.record_fido2_key(U2, "AAAH-00125", "example.com", b"cred", b"cose")
    nes.suspend("AAAH-00125", notes="gone", actor="CORP\\admin")
    nes.disconnect("AAAH-00125", actor="CORP\\admin")
    events = nes.audit()[start:]
    assert sorted((e.table, e.op, e.key) for e in events) == sorted([
        ("users", "create", U2),
        ("bands", "create", "AAAH-00125"),
        ("assignments", "create", "AAAH-00125"),
        ("bands", "update", "AAAH-00125"),
        ("fido2_keys", "create", b64url(b"cred")),
        ("assignments", "update", "AAAH-00125"),
        ("bands", "update", "AAAH-00125"),
        ("fido2_keys", "delete", b64url(b"cred")),
        ("assignments", "delete", "AAAH-00125"),
        ("bands", "update", "AAAH-00125"),
    ])
    suspend = next(e for e in events if e.table == "assignments" and e.op == "update")
    assert suspend.actor == "CORP\\admin" and events[0].actor == "CORP\\tw-user2"
    assert suspend.before == {"is_active": True, "notes": ""}
    assert suspend.after == {"is_active": False, "notes": "gone"}
    deleted = next(e for e in events if e.table == "assignments" and e.op == "delete")
    assert deleted.after is None and deleted.before is not None
    assert deleted.before["is_active"] is False and deleted.before["notes"] == "gone"
    # The former user's history stays queryable after Disconnect (DOMAIN 1.10).
    assert nes.user(U2).bands == ()
    history = nes.audit(account=U2, table="assignments")
    assert [e.op for e in history] == ["create", "update", "delete"]
    assert all(e.at_utc.tzinfo is not None for e in history)


def test_take_over_audits_the_previous_owner(nes: Nes) -> None:
    self_service(nes, own=True, any_band=True)
    nes.enroll(U1, band("ACAK-00056"))
    nes.enroll(U2, band("AAAH-00125"))
    nes.enroll(U2, band("ACAK-00056"))
    u1 = nes.audit(account=U1, table="assignments")
    assert [e.op for e in u1] == ["create", "delete"]
    assert u1[-1].actor == U2


def test_refused_operations_leave_no_audit_rows(nes: Nes) -> None:
    nes.enroll(U1, band("ACAK-00056"))
    count = len(nes.audit())
    with pytest.raises(NesRefusal):
        nes.enroll(U2, band("ACAK-00056"))
    assert len(nes.audit()) == count


def test_every_audited_table_is_covered(nes: Nes) -> None:
    nes.update_policy("Default Settings Set", {"enrollment_destination": "nes-and-evidian",
                                               "corporate_credentials": True})
    nes.enroll(U2, band("AAAH-00125", nfc_id="04AA"))
    nes.record_fido2_key(U2, "AAAH-00125", "example.com", b"cred", b"cose")
    seen = {e.table for e in nes.audit()}
    assert seen == set(AUDITED_TABLES)
