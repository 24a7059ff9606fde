"""``--html FILE``: one self-contained page (no script, no network): findings, evidence, one UTC
timeline and, where Bluetooth was reached, the RSSI samples as an inline SVG plot."""

from __future__ import annotations

from html import escape
from typing import Any

from hosttools.diagnose.evidence import BleEvidence, Section, jsonable
from hosttools.diagnose.report import Diagnosis
from hosttools.diagnose.rules import Finding

_CSS = """
body{font-family:system-ui,sans-serif;margin:2em;color:#222;max-width:70em}
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.5em;border-bottom:1px solid #ccc}
.finding{border-left:6px solid #c00;padding:.5em 1em;margin:1em 0;background:#fdf2f2}
.finding.warning{border-color:#d90;background:#fdf8ec}
.finding h3{margin:.2em 0;font-size:1.05em}.rule{color:#777;font-weight:normal}
.healthy{border-left:6px solid #2a2;padding:.5em 1em;background:#f0faf0}
table{border-collapse:collapse;font-size:.9em}td,th{border:1px solid #ddd;padding:.25em .5em;
text-align:left;vertical-align:top}th{background:#f4f4f4}
.unavailable{color:#a60}.band{color:#036}.server{color:#606}
pre{white-space:pre-wrap;font-size:.8em;margin:0}
#timeline td:first-child{white-space:nowrap}
code{word-break:break-all}
"""


def _finding(finding: Finding) -> str:
    evidence = "".join(f"<li><b>{escape(i.section)}</b>: {escape(i.name)} = "
                       f"<code>{escape(str(i.value))}</code></li>" for i in finding.evidence)
    return (f'<div class="finding {finding.severity.value}" data-rule="{finding.rule}">'
            f"<h3>[{finding.severity.value}] {escape(finding.title)} "
            f'<span class="rule">({finding.rule})</span></h3>'
            f"<p><b>Why:</b> {escape(finding.detail)}</p>"
            f"<p><b>Fix:</b> {escape(finding.fix)}</p>"
            f"<p><b>Source:</b> Nymi support article “{escape(finding.reference)}”</p>"
            f"<ul>{evidence}</ul></div>")


def rssi_svg(ble: BleEvidence, width: int = 640, height: int = 200) -> str:
    """The RSSI samples over the scan, with the tap threshold (-42 dBm) drawn for reference."""
    pad = 40
    low, high = -100, -20
    span = max(ble.scan_seconds, max((s.seconds for s in ble.samples), default=0.0), 0.001)

    def x(t: float) -> float:
        return pad + (width - 2 * pad) * t / span

    def y(rssi: float) -> float:
        clamped = min(max(rssi, low), high)
        return pad / 2 + (height - pad) * (high - clamped) / (high - low)

    points = " ".join(f"{x(s.seconds):.1f},{y(s.rssi):.1f}" for s in ble.samples)
    grid = "".join(
        f'<line x1="{pad}" x2="{width - pad}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#eee"/>'
        f'<text x="4" y="{y(v) + 4:.1f}" font-size="10">{v}</text>'
        for v in range(low, high + 1, 20))
    threshold = y(-42)
    return (f'<svg xmlns="http://www.w3.org/2000/svg" id="rssi-plot" width="{width}" '
            f'height="{height}" role="img" aria-label="RSSI over time">'
            f"<title>RSSI of {escape(ble.address)} (dBm) over {span:.1f} s</title>{grid}"
            f'<line x1="{pad}" x2="{width - pad}" y1="{threshold:.1f}" y2="{threshold:.1f}" '
            f'stroke="#c60" stroke-dasharray="4 3"/>'
            f'<text x="{width - pad - 90}" y="{threshold - 4:.1f}" font-size="10" fill="#c60">'
            f"tap threshold -42</text>"
            f'<polyline fill="none" stroke="#036" stroke-width="1.5" points="{points}"/>'
            + "".join(f'<circle cx="{x(s.seconds):.1f}" cy="{y(s.rssi):.1f}" r="2" '
                      f'fill="#036"/>' for s in ble.samples)
            + f'<text x="{width / 2:.0f}" y="{height - 4}" font-size="10">seconds since the '
              f"scan started</text></svg>")


def _section(section: Section[Any]) -> str:
    state = ("collected" if section.available
             else f'<span class="unavailable">unavailable: {escape(str(section.unavailable))}'
                  "</span>")
    body = ""
    if section.data is not None:
        import json

        body = (f"<details><summary>data</summary><pre>"
                f"{escape(json.dumps(jsonable(section.data), indent=1, default=str))}"
                "</pre></details>")
    return (f'<tr data-section="{section.name}"><td>{section.name}</td>'
            f"<td>{escape(section.source)}</td><td>{section.duration_ms:.0f}</td>"
            f"<td>{state}{body}</td></tr>")


def render_html(diagnosis: Diagnosis) -> str:
    evidence = diagnosis.evidence
    serial = evidence.band.data.info.serial if evidence.band.data else evidence.target
    if diagnosis.findings:
        findings = "".join(_finding(f) for f in diagnosis.findings)
    elif evidence.band.available:
        findings = f'<p class="healthy">No finding for {escape(serial)}.</p>'
    else:
        findings = (f'<p class="finding">The band could not be reached: '
                    f"{escape(str(evidence.band.unavailable))}</p>")
    rows = "".join(
        f'<tr class="{t.source}"><td>{t.at_utc.isoformat(" ", "milliseconds")[:23]}</td>'
        f"<td>{t.source}</td><td>{escape(t.kind)}</td><td>{escape(t.text)}</td></tr>"
        for t in diagnosis.timeline)
    ble = evidence.ble.data
    plot = (rssi_svg(ble) if ble is not None and ble.samples
            else f'<p class="unavailable">No RSSI: {escape(str(evidence.ble.unavailable))}</p>')
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src data:">
<title>Diagnosis of {escape(serial)}</title><style>{_CSS}</style></head>
<body>
<h1>Nymi Band {escape(serial)}: diagnosis</h1>
<p>Target <code>{escape(evidence.target)}</code>,
collected {evidence.collected_utc:%Y-%m-%d %H:%M:%S} UTC in {evidence.duration_ms:.0f} ms.</p>
<h2 id="findings">Findings ({len(diagnosis.findings)})</h2>
{findings}
<h2>Evidence</h2>
<table id="sections"><tr><th>Section</th><th>Source</th><th>ms</th><th>State</th></tr>
{"".join(_section(s) for s in evidence.sections())}</table>
<h2>Bluetooth signal (RSSI)</h2>
{plot}
<h2>Timeline (UTC)</h2>
<p>Band events are placed in UTC from the band's clock at collection; server events are the NES
audit trail.</p>
<table id="timeline"><tr><th>UTC</th><th>Source</th><th>What</th><th>Detail</th></tr>{rows}</table>
</body></html>
"""
