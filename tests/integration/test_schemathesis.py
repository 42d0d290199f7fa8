"""Property-based checks of the HTTP API against its own OpenAPI schema (schemathesis,
in process over ASGI): whatever a client sends, no 5xx, and every answer matches the
schema (status codes, content types, bodies)."""

from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck
from hypothesis import settings as hyp_settings
from schemathesis.checks import not_a_server_error
from schemathesis.config import SchemathesisConfig
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_schema_conformance,
    status_code_conformance,
)

from ctxsearch.http.app import create_app


@pytest.fixture(scope="module")
def api_schema(settings, service):
    # Schema-violating input must be refused with a 4xx; 413 is how sizes are refused.
    config = SchemathesisConfig.from_dict(
        {"checks": {"negative_data_rejection": {"expected-statuses": ["400", "401", "403", "404", "413", "422"]}}}
    )
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(settings, service=service), config=config)


schema = schemathesis.pytest.from_fixture("api_schema")

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    negative_data_rejection,
]


@schema.parametrize()
@hyp_settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_api_conforms_to_its_schema(case):
    # In a query string every value is text: "a number where a string belongs" (files=2.9e+23)
    # is a valid file name there, so refusal of schema-violating data is checked on JSON bodies.
    checks = CHECKS if case.method.upper() != "GET" else CHECKS[:-1]
    case.call_and_validate(checks=checks)
