"""Every administrator action from the CLI and from the console: the same outcome and the same
audit rows (by the signed-in administrator) on both servers of an IT/OT site; refused for a
non-administrator. And ``nymi-band sign-in``: a Pending policy becomes Active."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from hosttools.cli import main
from simulator.fleet import Fleet
from simulator.nes import ADMIN_GROUP, BandFacts, Site, open_site
from simulator.nes.api import create_site_app
from simulator.nes.models import EnrollmentDestination
from simulator.nes.web import HELP_DESK_GROUP

PW = "pw-Secret1"
ADMIN = "CORP\\it-admin"
SERVERS = ("enrollment", "registration")
CLI_USER, WEB_USER = "CORP\\cli-user", "CORP\\web-user"
SERIALS = {CLI_USER: ("CLIA-00001", "CLIA-00002", "CLIA-00003"),
           WEB_USER: ("WEBA-00001", "WEBA-00002", "WEBA-00003")}
TARGETS = {CLI_USER: "CORP\\cli-next", WEB_USER: "CORP\\web-next"}


@pytest.fixture
def root(tmp_path: Path) -> Iterator[Path]:
    root = tmp_path / "fleet"
    with open_site(root, layout="it-ot") as site:
        d = site.directory
        d.scrypt_n = 2**4
        d.add_user(ADMIN, PW, groups=[ADMIN_GROUP])
        d.add_user("CORP\\helpdesk", PW, groups=[HELP_DESK_GROUP])
        for account in (*SERIALS, *TARGETS.values()):
            d.add_user(account, PW)
        for nes in site:
            nes.update_policy("Default Settings Set", {
                "enrollment_destination": EnrollmentDestination.NES_AND_EVIDIAN})
            for account, serials in SERIALS.items():
                nes.enroll(account, BandFacts(serials[0], device_id=serials[0],
                                              nfc_id=serials[0].replace("-", "")))
    yield root


def cli(root: Path, server: str, *args: str) -> dict[str, Any]:
    code = main(["--sim-dir", str(root), "--nes", server, *args, "--json"])
    assert code == 0, args
    return {}


class Console:
    def __init__(self, site: Site) -> None:
        self.client = TestClient(create_site_app(site))
        for server in SERVERS:
            page = self.client.get(f"/{server}/login")
            nonce = re.search(r'name="nonce" value="([^"]+)"', page.text)
            assert nonce is not None
            self.client.post(f"/{server}/login", data={
                "username": ADMIN, "password": PW, "nonce": nonce.group(1)})

    def post(self, server: str, path: str, **form: str) -> None:
        page = self.client.get(f"/{server}/users").text
        csrf = re.search(r'name="csrf" value="([^"]+)"', page)
        assert csrf is not None
        r = self.client.post(f"/{server}{path}", data={**form, "csrf": csrf.group(1)})
        assert r.status_code == 200 and "Refused" not in r.text, (path, form, r.text[-400:])


def normalized(events: list[Any], account: str) -> list[tuple[Any, ...]]:
    """Audit rows with the user's own serials and account replaced by placeholders."""
    names = {s: f"BAND{i}" for i, s in enumerate(SERIALS[account])}
    for who, label in ((account, "USER"), (TARGETS[account], "NEXT")):
        names.update({who: label, who.lower(): label, who.split("\\")[1]: label})

    def clean(value: Any) -> Any:
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()
                    if not k.endswith(("_at", "_id")) and k != "id"}
        if isinstance(value, str):
            for old, new in names.items():
                value = value.replace(old, new).replace(old.replace("-", ""), new)
            return value
        return value

    rows = [(e.table, e.op, clean(e.key), clean(e.actor), clean(e.before), clean(e.after))
            for e in events]
    return sorted(rows, key=repr)  # the order of rows within one transaction is not defined


def steps(account: str) -> list[tuple[str, dict[str, str]]]:
    """The actions, as (name, parameters), in an order every one of them is possible."""
    b1, b2, b3 = SERIALS[account]
    return [("suspend", {"serial": b1, "notes": "away"}), ("resume", {"serial": b1}),
            ("update", {"serial": b1, "notes": "checked"}),
            ("temporary", {"serial": b1}), ("enroll", {"serial": b2}),
            ("restore", {"serial": b1}), ("replace", {"serial": b1}),
            ("enroll", {"serial": b3}), ("disconnect", {"serial": b1}),
            ("eam-blacklist", {"kind": "RFID"}), ("eam-delete", {"kind": "Wearable"}),
            ("reassign", {"serial": b3})]


def run_cli(root: Path, site: Site, server: str, account: str, name: str,
            p: dict[str, str]) -> None:
    nes = site.server(server)
    if name == "enroll":
        nes.enroll(account, BandFacts(p["serial"], device_id=p["serial"]))
    elif name in ("eam-blacklist", "eam-delete"):
        entry = next(e for e in nes.eam_entries(account) if e.kind.value == p["kind"])
        cli(root, server, "nes", "eam", name.split("-")[1], str(entry.id))
    elif name == "update":
        cli(root, server, "nes", "band", "update", p["serial"], "--notes", p["notes"], "--yes")
    elif name == "reassign":
        cli(root, server, "nes", "band", "reassign", p["serial"], "--to", TARGETS[account],
            "--yes")
    else:
        extra = ["--notes", p["notes"]] if "notes" in p else []
        cli(root, server, "nes", "band", name, p["serial"], *extra, "--yes")


def run_web(console: Console, site: Site, server: str, account: str, name: str,
            p: dict[str, str]) -> None:
    nes = site.server(server)
    if name == "enroll":
        nes.enroll(account, BandFacts(p["serial"], device_id=p["serial"]))
    elif name in ("eam-blacklist", "eam-delete"):
        entry = next(e for e in nes.eam_entries(account) if e.kind.value == p["kind"])
        console.post(server, "/eam/act", action=name.split("-")[1], entry=str(entry.id),
                     account=account)
    elif name == "update":
        row = nes.user(account).band(p["serial"])
        flags = {k: "on" for k in ("is_active", "is_primary") if getattr(row, k)}
        console.post(server, "/band/save", serial=p["serial"], account=account,
                     notes=p["notes"], **flags)
    elif name == "reassign":
        console.post(server, "/act", action="reassign", serial=p["serial"], account=account,
                     to=TARGETS[account])
    else:
        extra = {"notes": p["notes"]} if "notes" in p else {}
        console.post(server, "/act", action=name, serial=p["serial"], account=account,
                     **extra)


def test_every_action_from_cli_and_console_same_outcome_and_audit(
        root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NYMI_NES_USER", ADMIN)
    monkeypatch.setenv("NYMI_NES_PASSWORD", PW)
    with open_site(root) as site:
        console = Console(site)
        for server in SERVERS:
            nes = site.server(server)
            for (name, p_cli), (_, p_web) in zip(steps(CLI_USER), steps(WEB_USER), strict=True):
                mark = len(nes.audit())
                run_cli(root, site, server, CLI_USER, name, p_cli)
                by_cli = nes.audit()[mark:]
                mark = len(nes.audit())
                run_web(console, site, server, WEB_USER, name, p_web)
                by_web = nes.audit()[mark:]
                assert by_cli and by_web, name
                assert normalized(by_cli, CLI_USER) == normalized(by_web, WEB_USER), name
                if name != "enroll":
                    assert {e.actor for e in by_cli} == {ADMIN}, name
                shown = [(b.is_active, b.is_primary, b.notes) for b in nes.user(CLI_USER).bands]
                assert shown == [(b.is_active, b.is_primary, b.notes)
                                 for b in nes.user(WEB_USER).bands], name
            # Where the sequence ends: the band moved to the next user, active and primary.
            assert [(b.serial, b.is_active, b.is_primary)
                    for b in nes.user(TARGETS[CLI_USER]).bands] == [
                ("CLIA-00003", True, True)]


@pytest.mark.parametrize("account", ["CORP\\helpdesk", "CORP\\cli-user"])
def test_cli_actions_are_refused_for_non_administrators(
        root: Path, account: str, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("NYMI_NES_USER", account)
    monkeypatch.setenv("NYMI_NES_PASSWORD", PW)
    with open_site(root) as site:
        before = [len(nes.audit()) for nes in site]
    for server in SERVERS:
        for args in (["band", "suspend", "CLIA-00001", "--yes"],
                     ["band", "disconnect", "CLIA-00001", "--yes"],
                     ["policy", "self-service", "Default Settings Set", "any"],
                     ["user", "policy", "cli-user", "Liveness Detection Disabled"],
                     ["eam", "blacklist", "1"]):
            code = main(["--sim-dir", str(root), "--nes", server, "nes", *args])
            err = capsys.readouterr().err
            assert code != 0 and "not a member" in err and err.count("\n") == 1, args
    with open_site(root) as site:
        assert [len(nes.audit()) for nes in site] == before


def test_sign_in_wearing_the_band_makes_a_pending_policy_active(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from hosttools.flows.enroll import enroll
    from hosttools.site import open_flow_band
    from simulator.control import apply_action

    def act(action: str, **params: object) -> dict[str, object]:
        with Fleet(root, durable=False).open_band("AAAH-00125") as held:
            return apply_action(held, action, dict(params))

    root = tmp_path / "fleet"
    Fleet(root, durable=False).add_band("nymi-band-3.0", "AAAH-00125")
    with open_site(root) as site:
        site.directory.scrypt_n = 2**4
        site.directory.add_user("CORP\\tw-user2", PW)
        site.directory.add_user(ADMIN, PW, groups=[ADMIN_GROUP])
        with open_flow_band("sim:AAAH-00125", sim_dir=root) as band:
            enroll(band, site.enrollment, "tw-user2", PW, lambda title, detail: None)
    monkeypatch.setenv("NYMI_NES_USER", ADMIN)
    monkeypatch.setenv("NYMI_NES_PASSWORD", PW)
    sim: Callable[..., int] = lambda *a: main(["--sim-dir", str(root), *a])  # noqa: E731
    assert sim("nes", "user", "policy", "tw-user2", "Liveness Detection Disabled") == 0
    capsys.readouterr()
    assert sim("nes", "user", "show", "tw-user2", "--json") == 0
    assert json.loads(capsys.readouterr().out)["policy_status"] == "Pending"
    act("remove")
    assert sim("-t", "sim:AAAH-00125", "sign-in", "-u", "tw-user2", "--password", PW) != 0
    err = capsys.readouterr().err
    assert "not on the wrist" in err and err.count("\n") == 1
    act("wear")
    assert sim("-t", "sim:AAAH-00125", "sign-in", "-u", "tw-user2", "--password", PW) != 0
    assert "not authenticated" in capsys.readouterr().err
    act("finger", match=True)
    assert sim("-t", "sim:AAAH-00125", "sign-in", "-u", "tw-user2", "--password", PW,
               "--json") == 0
    result = json.loads(capsys.readouterr().out)
    assert result["policy_status"] == "Active" and result["band_updated"]
    state = act("status")["state"]
    assert isinstance(state, dict) and state["liveness"] is False
