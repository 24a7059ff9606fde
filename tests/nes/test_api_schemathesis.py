"""Schemathesis against the OpenAPI document a served NES publishes: for every operation, valid
and invalid requests (a fixed number of each, derandomized) as an administrator; no answer may
be a server error, and every answer must be one the document declares, with the body, content
type and headers it declares.

A longer campaign runs the same with more examples: ``NYMI_SCHEMATHESIS_EXAMPLES=500 pytest
tests/nes/test_api_schemathesis.py``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from simulator.nes import Directory, Nes, create_app
from simulator.nes.api_guard import ApiLimits
from simulator.nes.served import Served
from tests.nes.conftest import PASSWORD
from tests.nes.helpers import ADMIN, U2, band, self_service

EXAMPLES = int(os.environ.get("NYMI_SCHEMATHESIS_EXAMPLES", "8"))
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]


@pytest.fixture
def served(tmp_path: Path, directory: Directory) -> Iterator[Served]:
    with Nes.open(tmp_path / "nes.db", directory=directory) as nes:
        self_service(nes, own=True)
        nes.enroll(U2, band("AAAH-00125"))
        # Generated requests sign in many times: the lockout is not what is tested here.
        limits = ApiLimits(account_failures=10**6, client_failures=10**6)
        with Served(create_app(nes, limits=limits)) as s:
            yield s


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_schemathesis_finds_no_server_error_and_no_schema_violation(
        served: Served, mode: GenerationMode) -> None:
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    session = requests.Session()
    session.auth = (ADMIN, PASSWORD)
    results = list(schema.get_all_operations())
    operations = [result.ok() for result in results if isinstance(result, Ok)]
    assert len(operations) == len(results) > 30
    for operation in operations:
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(case=operation.as_strategy(generation_mode=mode))
        def run(case: Any) -> None:
            response = case.call(base_url=served.url, session=session)
            case.validate_response(response, checks=CHECKS)

        try:
            run()
        except Unsatisfiable:
            # Nothing in this operation can be made invalid (no parameters, no body).
            assert mode is GenerationMode.NEGATIVE, operation.label
