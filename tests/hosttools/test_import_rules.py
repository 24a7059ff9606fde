"""The layers' import rules, read from the source: host tools reach the simulator only through
the wiring that builds an embedded site, and the device layer never reaches up."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
#: The only host-tool modules that may import the simulator: the embedded-site wiring and the
#: demo (docs/architecture.md).
WIRING = {"hosttools/site.py", "hosttools/demo.py"}


def imported(path: Path) -> set[str]:
    """Every module a file imports, wherever the import statement stands."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def offenders(package: str, forbidden: tuple[str, ...], allowed: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        bad = sorted(m for m in imported(path)
                     if m.split(".")[0] in forbidden and name not in allowed)
        if bad:
            out[name] = bad
    return out


def test_only_the_wiring_and_the_demo_import_the_simulator() -> None:
    assert offenders("hosttools", ("simulator",), WIRING) == {}


def test_the_device_layer_imports_neither_the_simulator_nor_the_host_tools() -> None:
    assert offenders("nymi_device", ("simulator", "hosttools"), set()) == {}


def test_the_rule_sees_imports_inside_functions(tmp_path: Path) -> None:
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from simulator.fleet import Fleet\n")
    assert imported(probe) == {"simulator.fleet"}
