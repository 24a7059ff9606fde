"""The terminal report: findings first (what is wrong, why, what to do), then the evidence."""

from __future__ import annotations

from typing import Any

from rich.console import Console, Group, RenderableType
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hosttools.diagnose.evidence import Evidence, Section
from hosttools.diagnose.report import Diagnosis
from hosttools.diagnose.rules import Finding, Severity

_STYLE = {Severity.ERROR: "bold red", Severity.WARNING: "bold yellow"}
_TIMELINE_ROWS = 25


def _finding(index: int, finding: Finding) -> RenderableType:
    head = Text.assemble((f"{index}. [{finding.severity.value}] ", _STYLE[finding.severity]),
                         (finding.title, "bold"), (f"  ({finding.rule})", "dim"))
    table = Table.grid(padding=(0, 1))
    table.add_column(style="bold", no_wrap=True)
    table.add_column()
    table.add_row("   Why", escape(finding.detail))
    table.add_row("   Fix", escape(finding.fix))
    table.add_row("   Source", escape(f"Nymi support: \"{finding.reference}\""))
    for item in finding.evidence:
        table.add_row("   Evidence", escape(f"{item.section}: {item.name} = {item.value}"))
    return Group(head, table, Text(""))


def _rows(section: Section[Any]) -> list[tuple[str, str]]:
    data = section.data
    if data is None:
        return []
    rows: list[tuple[str, str]] = []
    name = section.name
    if name == "band":
        info, status = data.info, data.status
        rows += [("identity", f"{info.serial} {info.model} (fixture {info.fixture}), firmware "
                              f"{info.firmware_version}"),
                 ("battery", f"{status.battery_pct:.0f}%, "
                             f"{'on' if status.on_charger else 'off'} the charger, "
                             f"power {status.power.value}"),
                 ("wrist / auth", f"{'on' if status.on_wrist else 'off'} the wrist, "
                                  f"{status.auth.value}, screen '{status.screen}'"),
                 ("enrollment", f"{status.enrollment.value}, label {status.band_label!r}"),
                 ("failures", f"fingerprint {status.fingerprint_failures}, liveness "
                              f"{status.liveness_failures}, locked out {status.locked_out}")]
    elif name == "events":
        rows.append(("events", f"{len(data.events)} recent (band clock "
                               f"{data.band_time_at_collection:.1f} s)"))
    elif name == "fido2":
        rows.append(("authenticator", f"AAGUID {data.aaguid}, {', '.join(data.versions)}"))
        if data.credentials is None:
            rows.append(("credentials", f"unavailable: {data.credentials_unavailable}"))
        else:
            listed = ", ".join(f"{c.rp_id} {c.credential_id[:16]}…" for c in data.credentials)
            rows.append(("credentials", f"{data.credential_count} ({listed or 'none'}), "
                                        f"{data.remaining_capacity} more can be stored"))
    elif name == "nfc":
        rows += [("reader", data.reader), ("identifier", str(data.identifier)),
                 ("applets", ", ".join(f"{a.name} {a.status}" for a in data.applets))]
    elif name == "ble":
        rssi = [s.rssi for s in data.samples]
        rows += [("address", data.address),
                 ("rssi", f"{len(rssi)} samples, {min(rssi)}..{max(rssi)} dBm, "
                          f"long average {data.long_average}, proximity {data.proximity}"),
                 ("advertised", " ".join(data.advertised_state) or "-")]
    elif name == "server":
        band = data.band
        rows.append(("nes", data.nes))
        if band is None:
            rows.append(("band", "no record of this band"))
        else:
            row = band.assignment
            rows.append(("band", f"owner {band.owner}, "
                                 + ("no association" if row is None else
                                    f"is_active {row.is_active}, is_primary {row.is_primary}")
                                 + (", SEOS" if band.seos_enabled else "")
                                 + (", Secure NFC" if band.secure_nfc else "")))
        for label, user in (("owner", data.owner), ("asking user", data.asking_user)):
            if user is not None:
                rows.append((label, f"{user.account}: policy status {user.policy_status}, "
                                    f"self-service own {user.self_service_own}, any "
                                    f"{user.self_service_any}, bands "
                                    + ", ".join(f"{b.serial}{'*' if b.is_active else ''}"
                                                for b in user.bands)))
        if data.asking_user_unavailable:
            rows.append(("asking user", f"unavailable: {data.asking_user_unavailable}"))
        rows.append(("fido2 keys", ", ".join(f"{k.rp_id} on {k.serial}"
                                             for k in data.fido2_keys) or "none"))
        rows.append(("eam", ", ".join(f"{e.kind} {e.state_label}"
                                      for e in data.eam_entries) or "none"))
        rows.append(("audit", f"{len(data.audit)} recent events"))
    return rows


def _evidence(evidence: Evidence) -> Table:
    table = Table("Section", "Source", "ms", "Evidence", title="Evidence",
                  title_justify="left")
    for section in evidence.sections():
        rows = _rows(section)
        if not rows:
            table.add_row(section.name, escape(section.source), f"{section.duration_ms:.0f}",
                          Text(f"unavailable: {section.unavailable}", style="yellow"))
            continue
        for i, (key, value) in enumerate(rows):
            table.add_row(section.name if i == 0 else "",
                          escape(section.source) if i == 0 else "",
                          f"{section.duration_ms:.0f}" if i == 0 else "",
                          escape(f"{key}: {value}"))
    return table


def render_text(diagnosis: Diagnosis, console: Console) -> None:
    evidence = diagnosis.evidence
    serial = (evidence.band.data.info.serial if evidence.band.data
              else evidence.target)
    if diagnosis.findings:
        console.print(f"[bold]{len(diagnosis.findings)} finding(s) for {escape(serial)}[/]\n")
        for i, finding in enumerate(diagnosis.findings, 1):
            console.print(_finding(i, finding))
    elif evidence.band.available:
        console.print(f"[bold green]No finding for {escape(serial)}.[/]\n")
    else:
        console.print(f"[bold red]The band {escape(evidence.target)} could not be reached:[/] "
                      f"{escape(str(evidence.band.unavailable))}\n")
    console.print(_evidence(evidence))
    if diagnosis.timeline:
        table = Table("UTC", "Source", "What", "Detail", title="Timeline (most recent)",
                      title_justify="left")
        for entry in diagnosis.timeline[-_TIMELINE_ROWS:]:
            table.add_row(entry.at_utc.strftime("%Y-%m-%d %H:%M:%S"), entry.source,
                          escape(entry.kind), escape(entry.text))
        console.print(table)
    console.print(f"[dim]Collected {evidence.collected_utc:%Y-%m-%d %H:%M:%S} UTC in "
                  f"{evidence.duration_ms:.0f} ms.[/]")
