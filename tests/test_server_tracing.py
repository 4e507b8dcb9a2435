"""OpenTelemetry spans: request span with stage and engine children."""

from __future__ import annotations

from pathlib import Path

import httpx
from server_fixtures import start_server

from cozy.server.tracing import Tracing
from cozy.testing import FakeModelServer


def test_request_span_has_stage_and_engine_children() -> None:
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    tracing = Tracing("console")
    memory = InMemorySpanExporter()
    tracing.provider.add_span_processor(SimpleSpanProcessor(memory))
    span = tracing.start_request("POST", "/v1/chat/completions", "req-1")
    state = {
        "user_id": "alice",
        "session_id": "ses_1",
        "timings": {
            "prepare": 1.0,
            "context": 5.0,
            "tools": 0.1,
            "generate": 20.0,
            "persist": 2.0,
            "total": 28.1,
        },
        "engines": {"memory": {"latency_ms": 4.0, "degraded": True}},
    }
    tracing.end_request(span, 200, state)
    spans = {s.name: s for s in memory.get_finished_spans()}
    assert set(spans) >= {
        "POST /v1/chat/completions",
        "prepare",
        "context",
        "generate",
        "persist",
        "engine.memory",
    }
    root = spans["POST /v1/chat/completions"]
    assert root.attributes["cozy.request_id"] == "req-1"
    assert root.attributes["http.response.status_code"] == 200
    assert spans["generate"].parent.span_id == root.context.span_id
    assert spans["engine.memory"].parent.span_id == spans["context"].context.span_id
    assert spans["engine.memory"].attributes["cozy.degraded"] is True
    gen = spans["generate"]
    assert abs((gen.end_time - gen.start_time) / 1e6 - 20.0) < 0.01
    tracing.shutdown()


def test_server_with_console_exporter_serves(cozy_home: Path, fake_model: FakeModelServer) -> None:
    thread, s = start_server(cozy_home, fake_model, otel_exporter="console")
    try:
        r = httpx.post(
            s.base_url + "/chat/completions",
            headers=s.headers(),
            json={"model": "cozy", "messages": [{"role": "user", "content": "hi"}]},
            timeout=60,  # a first turn opens the engines: slow on a loaded machine
        )
        assert r.status_code == 200
    finally:
        thread.stop()


def test_tracing_off_imports_nothing() -> None:
    t = Tracing("none")
    assert t.start_request("GET", "/", "r") is None
    t.end_request(None, 200, {})
