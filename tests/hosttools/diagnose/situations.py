"""Every situation the diagnose tests need, built through the flows on a simulated site.

The one place that knows the flows' API: the tests say *what* happened (enrolled, wiped, moved to
another band, failed the fingerprint four times), this module makes it happen, and runs
``nymi-band diagnose`` through its command line.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hosttools.cli import main
from hosttools.flows.bands import FlowBand
from hosttools.flows.delete_user_data import delete_user_data
from hosttools.flows.enroll import enroll, reenroll
from hosttools.flows.fido2_keys import create_key
from hosttools.site import open_flow_band
from simulator.control import apply_action
from simulator.fleet import Fleet
from simulator.nes import DEFAULT_GROUP_POLICY, Nes, open_site

PASSWORD = "Passw0rd!"
USERS = ("CORP\\tw-user1", "CORP\\tw-user2")
BANDS = {"AAAH-00125": "nymi-band-3.0", "ACAK-00056": "nymi-band-3.0",
         "SEOS-00001": "nymi-band-3.0-seos", "SNFC-00001": "nymi-band-3.0-secure-nfc",
         "BTWO-00001": "nymi-band-2.0"}
OWN = "Allow a user to re-enroll / re-register their Nymi Band"
ANY = "Allow a user to re-enroll any active Nymi Band"
RP_ID = "portal.example.com"


def quiet(title: str, detail: dict[str, Any]) -> None:
    return None


class Stop(Exception):
    """Ends a flow at a chosen step, as a killed process would."""


class Site:
    """A fleet directory with an embedded NES, as ``nymi-band --sim-dir ROOT`` sees it."""

    def __init__(self, root: Path, capsys: pytest.CaptureFixture[str]) -> None:
        self.root = root
        self.capsys = capsys
        fleet = Fleet(root, durable=False)
        for serial, fixture in BANDS.items():
            fleet.add_band(fixture, serial)
        with open_site(root) as site:
            for account in USERS:
                site.directory.add_user(account, PASSWORD)

    @contextmanager
    def nes(self) -> Iterator[Nes]:
        with open_site(self.root) as site:
            yield site.server()

    def band(self, serial: str) -> FlowBand:
        """The band held open for one flow (close it, or use it in a ``with``)."""
        return open_flow_band(f"sim:{serial}", sim_dir=self.root)

    # -- what people do ------------------------------------------------------------------------
    def policy(self, **changes: Any) -> None:
        with self.nes() as nes:
            nes.update_policy(DEFAULT_GROUP_POLICY, changes)

    def self_service(self, own: bool = True, any_band: bool = True) -> None:
        with self.nes() as nes:
            nes.update_policy(DEFAULT_GROUP_POLICY, {OWN: own, ANY: any_band})

    def enroll(self, serial: str, user: str) -> None:
        with self.nes() as nes, self.band(serial) as band:
            enroll(band, nes, user, PASSWORD, quiet)

    def enroll_interrupted(self, serial: str, user: str, after: str) -> None:
        def stop(step: str) -> None:
            if step == after:
                raise Stop(step)
        with self.nes() as nes, self.band(serial) as band, pytest.raises(Stop):
            enroll(band, nes, user, PASSWORD, quiet, after_step=stop)

    def reenroll(self, serial: str, user: str) -> None:
        with self.nes() as nes, self.band(serial) as band:
            reenroll(band, nes, user, PASSWORD, quiet)

    def create_key(self, serial: str, user: str) -> None:
        with self.nes() as nes, self.band(serial) as band:
            create_key(band, nes, user, RP_ID, quiet)

    def delete_user_data(self, serial: str) -> None:
        self.act(serial, "remove")
        self.act(serial, "charge")
        with self.band(serial) as band:
            delete_user_data(band, quiet)

    def act(self, serial: str, action: str, **params: Any) -> dict[str, Any]:
        with Fleet(self.root, durable=False).open_band(serial) as held:
            return apply_action(held, action, params)

    def fail_authentication(self, serial: str, times: int, *, match: bool = False,
                            ecg: bool = True) -> None:
        self.act(serial, "remove")
        self.act(serial, "wear")
        for _ in range(times):
            self.act(serial, "finger", match=match, ecg=ecg)

    def admin(self, operation: str, *args: Any, **kwargs: Any) -> Any:
        with self.nes() as nes:
            return getattr(nes, operation)(*args, **kwargs)

    # -- diagnose ------------------------------------------------------------------------------
    def run(self, *args: str) -> tuple[int, str, str]:
        self.capsys.readouterr()
        code = main(["--sim-dir", str(self.root), *args])
        out, err = self.capsys.readouterr()
        return code, out, err

    def diagnose(self, serial: str, *args: str) -> tuple[int, dict[str, Any]]:
        code, out, err = self.run("--target", f"sim:{serial}", "diagnose", "--json", *args)
        assert "Traceback" not in err
        report: dict[str, Any] = json.loads(out)
        assert code == report["exit_code"]
        return code, report


def rules_of(report: dict[str, Any]) -> list[str]:
    return [f["rule"] for f in report["findings"]]


def only_finding(report: dict[str, Any], rule: str) -> dict[str, Any]:
    assert rules_of(report) == [rule], report["findings"]
    assert report["exit_code"] == 1
    finding: dict[str, Any] = report["findings"][0]
    return finding


def evidence(finding: dict[str, Any]) -> dict[str, Any]:
    return {f"{e['section']}: {e['name']}": e["value"] for e in finding["evidence"]}
