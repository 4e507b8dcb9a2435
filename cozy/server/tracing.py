"""OpenTelemetry spans: one per request, with children per stage and context engine.

Stage and engine spans are recorded after the fact from the orchestrator's timings
(`Done.timings`, context metadata), so the orchestrator stays free of tracing code.
Exporter: none (default, nothing imported), console, or otlp (HTTP/protobuf).
"""

from __future__ import annotations

import time
from typing import Any

STAGES = ("prepare", "context", "tools", "generate", "persist")


class Tracing:
    def __init__(self, exporter: str = "none", endpoint: str | None = None) -> None:
        self.enabled = exporter != "none"
        self.tracer: Any = None
        self.provider: Any = None
        if not self.enabled:
            return
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import (
            BatchSpanProcessor,
            ConsoleSpanExporter,
            SimpleSpanProcessor,
        )

        self.provider = TracerProvider(resource=Resource.create({"service.name": "cozy"}))
        if exporter == "console":
            self.provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            otlp = OTLPSpanExporter(endpoint=endpoint) if endpoint else OTLPSpanExporter()
            self.provider.add_span_processor(BatchSpanProcessor(otlp))
        self.tracer = self.provider.get_tracer("cozy.server")

    def start_request(self, method: str, path: str, request_id: str) -> Any:
        if self.tracer is None:
            return None
        span = self.tracer.start_span(f"{method} {path}")
        span.set_attribute("http.request.method", method)
        span.set_attribute("url.path", path)
        span.set_attribute("cozy.request_id", request_id)
        return span

    def end_request(self, span: Any, status: int, state: dict[str, Any]) -> None:
        if span is None:
            return
        from opentelemetry import trace

        span.set_attribute("http.response.status_code", status)
        for key in ("user_id", "session_id", "personality_id"):
            if state.get(key):
                span.set_attribute(f"cozy.{key}", str(state[key]))
        timings = state.get("timings") or {}
        if timings:
            ctx = trace.set_span_in_context(span)
            end_ns = time.time_ns()
            start_ns = end_ns - int(float(timings.get("total", 0)) * 1e6)
            cursor = start_ns
            for stage in STAGES:
                ms = float(timings.get(stage, 0.0))
                child = self.tracer.start_span(stage, context=ctx, start_time=cursor)
                if stage == "context":
                    self._engines(child, cursor, state.get("engines") or {})
                cursor += int(ms * 1e6)
                child.end(end_time=cursor)
        span.end()

    def _engines(self, parent: Any, start_ns: int, engines: dict[str, Any]) -> None:
        from opentelemetry import trace

        ctx = trace.set_span_in_context(parent)
        for name, info in engines.items():
            ms = float(info.get("latency_ms", 0.0)) if isinstance(info, dict) else 0.0
            span = self.tracer.start_span(f"engine.{name}", context=ctx, start_time=start_ns)
            span.set_attribute("cozy.degraded", bool(info.get("degraded")))
            span.end(end_time=start_ns + int(ms * 1e6))

    def shutdown(self) -> None:
        if self.provider is not None:
            self.provider.shutdown()
