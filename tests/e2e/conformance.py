"""The conformance table of ``docs/fido2.md``, kept current by the tests that produce its rows.

Each row is one suite against one fixture over one transport. A test that runs a suite calls
:func:`record` with what it saw; the row is rewritten in place (or added) between the table's
markers, and the file is written only when the row changed. Timings are left out on purpose:
the table changes when a result does, not on every run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "fido2.md"
START = "<!-- conformance:start -->"
END = "<!-- conformance:end -->"
HEADER = ("| suite | version | transport | fixture | result | test |\n"
          "|---|---|---|---|---|---|")


@dataclass(frozen=True)
class Row:
    suite: str
    version: str
    transport: str
    fixture: str
    result: str
    test: str

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.suite, self.transport, self.fixture)

    def line(self) -> str:
        return (f"| {self.suite} | {self.version} | {self.transport} | `{self.fixture}` | "
                f"{self.result} | `{self.test}` |")


def _parse(line: str) -> tuple[str, str, str] | None:
    cells = [c.strip() for c in line.strip().strip("|").split("|")]
    if len(cells) != 6 or cells[0] in ("suite", "---"):
        return None
    return (cells[0], cells[2], cells[3].strip("`"))


def record(row: Row, doc: Path = DOC) -> bool:
    """Put ``row`` into the table; return whether the file changed."""
    text = doc.read_text(encoding="utf-8")
    head, found, rest = text.partition(START)
    if not found or END not in rest:
        raise ValueError(f"{doc} has no conformance table markers")
    body, _, tail = rest.partition(END)
    lines = [line for line in body.strip().splitlines() if _parse(line) is not None]
    keyed = {_parse(line): line for line in lines}
    keyed[row.key] = row.line()
    ordered = sorted(keyed.items(), key=lambda item: item[0] or ("", "", ""))
    table = "\n".join([HEADER, *(line for _, line in ordered)])
    new = f"{head}{START}\n{table}\n{END}{tail}"
    if new == text:
        return False
    doc.write_text(new, encoding="utf-8")
    return True
