"""Every registered parser, fuzzed with a fixed budget (the campaign runs the same for minutes)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fuzzing import TARGETS, FuzzTarget, run_target

#: The parsers that take bytes from outside the band; each must stay registered.
REQUIRED = {"ctap-cbor", "ctaphid", "apdu", "card-os", "management", "fido-ble", "journal"}


def test_every_parser_is_registered() -> None:
    assert {target.name for target in TARGETS} >= REQUIRED


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_fuzz_target(target: FuzzTarget, tmp_path: Path) -> None:
    count = [0]
    run_target(target, tmp_path, max_examples=target.suite_examples, count=count)
    assert count[0] >= min(10, target.suite_examples)
