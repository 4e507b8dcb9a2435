"""schemathesis over the served OpenAPI document, with response-conformance checks:
every status, content type, header and body the server answers must be the documented
one (not only "no 5xx"), for every operation."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, settings
from schemathesis import checks
from server_fixtures import Served, start_server

from cozy.testing import FakeModelServer

# the response checks, plus "an invalid request is refused" (5xx checked below). Left
# out: "a schema-valid request is accepted" — rules the schema cannot state (a
# conversation needs a user message; a tool message answers a tool call) rightly
# answer 400.
CHECKS = [
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_headers_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


# espeak-ng, a real voice that synthesises in milliseconds: the default neural voice
# spends minutes on a long fuzzed `input` (every symbol is spelt out), which this test of
# the HTTP contract is not about; the speech deadline has its own test
# (test_voice_openai_audio.py), and a 5 s deadline here bounds what espeak could still take.
VOICE = "voice:\n  tts: {provider: espeak}\n"
SPEECH_PATHS = ("/v1/audio/speech", "/v1/audio/tts")
LONGEST_SPOKEN = 300  # characters of a valid `input` this test has synthesised


@pytest.fixture
def served(cozy_home: Path, fake_model: FakeModelServer) -> Iterator[Served]:
    thread, info = start_server(cozy_home, fake_model, VOICE, speech_timeout=5)
    try:
        yield info
    finally:
        thread.stop()


@pytest.fixture
def api_schema(served: Served) -> Any:
    return schemathesis.openapi.from_url(served.url + "/schema/openapi.json")


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(
    max_examples=8,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_responses_conform_to_the_document(case: Any, served: Served) -> None:
    text = case.body.get("input") if isinstance(case.body, dict) else None
    if case.operation.path in SPEECH_PATHS and isinstance(text, str) and len(text) <= 8192:
        # a valid input of thousands of characters is minutes of audio to stream back
        assume(len(text) <= LONGEST_SPOKEN)
    # the admin key reaches every route; a DELETE of a packaged personality is a 400
    response = case.call(headers=served.headers("root"), timeout=60)  # generous: loaded machine
    case.validate_response(response, checks=CHECKS)
    # no 5xx, except the documented 501 of a feature whose optional extra this install
    # lacks (mp3 speech without the `voice` extra)
    if response.status_code >= 500:
        code = response.json()["error"]["code"]
        assert response.status_code == 501 and code == "missing_extra", response.text[:500]
