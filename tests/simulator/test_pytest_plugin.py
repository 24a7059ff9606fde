"""The pytest plugin as a CI engineer meets it: the README's example runs as written, and every
fixture is documented in ``pytest --fixtures``."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from simulator.fleet import Fleet

pytest_plugins = ["pytester"]

README = Path(__file__).resolve().parents[2] / "README.md"
FIXTURES = ("nymi_fleet", "nymi_band", "nymi_ready_band", "nymi_live_band", "nymi_ctap_device",
            "nymi_ctaphid_udp", "nymi_pcsc_device", "nymi_nes")


def readme_example() -> str:
    """The code block after the ``<!-- pytest-example -->`` marker in README.md."""
    text = README.read_text(encoding="utf-8")
    found = re.search(r"<!-- pytest-example -->\s*```python\n(.*?)```", text, re.S)
    assert found, "README.md has no <!-- pytest-example --> block"
    return found.group(1)


def test_the_readme_example_is_ten_lines_and_passes(pytester: pytest.Pytester) -> None:
    code = readme_example()
    assert len([line for line in code.splitlines() if line.strip()]) <= 10
    pytester.makepyfile(test_readme=code)
    result = pytester.runpytest_subprocess("-q", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=1)


def test_every_fixture_is_documented(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest_subprocess("--fixtures", "-p", "no:cacheprovider")
    out = result.stdout.str()
    for name in FIXTURES:
        block = re.search(rf"^{name}\b.*\n((?:    .*\n)+)", out, re.M)
        assert block and len(block.group(1).strip()) > 40, f"{name} is not documented"


def test_ready_band_is_worn_enrolled_and_authenticated(nymi_fleet: Fleet,
                                                       nymi_ready_band: str) -> None:
    with nymi_fleet.open_band(nymi_ready_band, save=False) as band:
        status = band.status()
    assert status.on_wrist and status.enrollment.value == "enrolled"
    assert status.auth.value == "authenticated"


def test_served_over_udp_answers_the_cli(nymi_fleet: Fleet, nymi_ctaphid_udp: object,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    from hosttools.cli import main

    target = nymi_ctaphid_udp.target  # type: ignore[attr-defined]
    assert re.fullmatch(r"udp:127\.0\.0\.1:\d+/\d+", target)
    assert main(["--target", target, "info", "--json"]) == 0
    assert "0acf3011-bc60-f375-fb53-6f05f43154e0" in capsys.readouterr().out


def test_embedded_nes_is_like_the_demo(nymi_nes: object) -> None:
    from simulator.pytest_plugin import DEMO_PASSWORD

    site = nymi_nes
    for user in ("tw-user1", "tw-user2", "nes-admin"):
        assert site.directory.authenticate(f"CORP\\{user}", DEMO_PASSWORD)  # type: ignore[attr-defined]
