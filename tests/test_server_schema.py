"""A bounded schemathesis run over the served OpenAPI schema: no input gives a 5xx."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from test_server_fixtures import Served, served_fixture  # noqa: F401 - fixture

# cozy's own routes (other engineers' controllers are fuzzed by their own tests)
ROUTES = r"^/(v1/(chat|models|embeddings|personalities)|health|ready)"


@pytest.fixture
def api_schema(served: Served) -> Any:
    schema = schemathesis.openapi.from_url(served.url + "/schema/openapi.json")
    return schema.include(path_regex=ROUTES)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_no_server_errors(case: Any, served: Served) -> None:
    # the admin key reaches every route; a DELETE of a packaged personality is a 400
    response = case.call(headers=served.headers("root"), timeout=60)  # generous: loaded machine
    assert response.status_code < 500, (case.method, case.path, response.text[:500])
    if response.status_code >= 400:
        err = response.json()["error"]
        assert {"message", "type", "param", "code"} <= set(err)
