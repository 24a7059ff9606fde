"""The Locust load: a master and two workers against ``nymi-sim nes serve`` on loopback.

Every enrollment a simulated user completed (its ledger) must be recorded by the server exactly
once: each band created once, owned by its user, and one band update per enrollment.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from simulator.load.runner import nes_server, prepare_site, run_locust
from simulator.load.scenario import read_ledger
from simulator.nes import open_site


def test_master_and_two_workers_record_every_enrollment_once(tmp_path: Path) -> None:
    root = tmp_path / "site"
    prepare_site(root, users=4, workers=2)
    with nes_server(root) as url:
        result = run_locust(url, tmp_path / "load", users=4, seconds=5, workers=2)
    assert result.failures == 0, result.to_dict()
    ledger = [row for row in read_ledger(tmp_path / "load") if row["kind"] in ("enroll", "reenroll") and row["ok"]]
    assert result.rows["enroll"]["count"] >= 1
    enrolled = Counter(row["serial"] for row in ledger)
    owners = {row["serial"]: row["account"] for row in ledger}
    assert len({s[:4] for s in enrolled}) == 2  # both workers' users enrolled bands
    with open_site(root) as site:
        nes = site.enrollment
        bands = nes.bands(limit=1000)
        assert sorted(b.serial for b in bands) == sorted(enrolled)  # none lost, none extra
        assert {b.serial: b.owner for b in bands} == {s: f"CORP\\{a}" for s, a in owners.items()}
        events = nes.audit(table="bands", limit=100_000)
        created = Counter(e.key for e in events if e.op == "create")
        updated = Counter(e.key for e in events if e.op == "update")
    assert created == Counter(dict.fromkeys(enrolled, 1))
    assert updated == enrolled  # one recorded enrollment per enrollment done, no duplicate
