"""``--bundle FILE.zip``: what to attach to a support ticket.

The archive holds ``report.json`` (the ``--json`` document), ``report.html``, ``report.txt``,
the raw traffic seen while collecting, split by channel (``apdu-trace.txt`` for NFC,
``ctap-frames.txt`` for CTAPHID/FIDO BLE, ``management-frames.txt`` for the band management
protocol, ``traffic.log`` for all of it in order), and ``README.txt`` saying what is missing and
why (for example: a band reached in-process has no traffic on any wire).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

from rich.console import Console

from hosttools.diagnose.render_html import render_html
from hosttools.diagnose.render_json import render_json
from hosttools.diagnose.render_text import render_text
from hosttools.diagnose.report import Diagnosis

#: logger name fragment → file of the bundle.
CHANNELS = {
    "transport.pcsc": "apdu-trace.txt",
    "transport.nfcpy": "apdu-trace.txt",
    "transport.udp_hid": "ctap-frames.txt",
    "transport.ble": "ctap-frames.txt",
    "management": "management-frames.txt",
}


def _split(traffic: tuple[str, ...]) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for line in traffic:
        logger = line.split(" ", 2)[1] if line.count(" ") >= 2 else ""
        name = next((f for key, f in CHANNELS.items() if key in logger), "other-traffic.txt")
        files.setdefault(name, []).append(line)
    return files


def _readme(diagnosis: Diagnosis, files: dict[str, list[str]]) -> str:
    evidence = diagnosis.evidence
    lines = [f"Diagnosis of {evidence.target}, collected {evidence.collected_utc.isoformat()}",
             f"Findings: {len(diagnosis.findings)} "
             f"({', '.join(f.rule for f in diagnosis.findings) or 'none'})", "",
             "Sections:"]
    for s in evidence.sections():
        lines.append(f"  {s.name:<7} {s.source} ({s.duration_ms:.0f} ms): "
                     + ("collected" if s.available else f"unavailable: {s.unavailable}"))
    lines += ["", "Raw traffic:"]
    if files:
        lines += [f"  {name}: {len(rows)} lines" for name, rows in sorted(files.items())]
    else:
        lines.append("  none: no frame crossed a wire the host logs (a simulated band reached "
                     "in-process, or no transport was reached)")
    lines.append("  btsnoop: not captured (the scan reads advertisements through the "
                 "Bluetooth stack; see ble in report.json for the RSSI samples)")
    return "\n".join(lines) + "\n"


def write_bundle(diagnosis: Diagnosis, path: Path) -> None:
    files = _split(diagnosis.evidence.traffic)
    text = io.StringIO()
    render_text(diagnosis, Console(file=text, width=120, color_system=None))
    tmp = path.with_name(path.name + ".part")
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("report.json", render_json(diagnosis))
        archive.writestr("report.html", render_html(diagnosis))
        archive.writestr("report.txt", text.getvalue())
        archive.writestr("README.txt", _readme(diagnosis, files))
        if diagnosis.evidence.traffic:
            archive.writestr("traffic.log", "\n".join(diagnosis.evidence.traffic) + "\n")
        for name, rows in files.items():
            archive.writestr(name, "\n".join(rows) + "\n")
    tmp.replace(path)
