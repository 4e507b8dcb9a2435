"""Prometheus metrics, one registry per app (so several apps can live in one process).

With `--workers N` each worker counts its own requests; set PROMETHEUS_MULTIPROC_DIR
to aggregate them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

from typing import Any


class Metrics:
    def __init__(self) -> None:
        import os

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.multiprocess = bool(os.environ.get("PROMETHEUS_MULTIPROC_DIR"))
        reg = None if self.multiprocess else self.registry
        self.chat_requests = Counter(
            "chat_requests_total",
            "Chat completion requests",
            ["model", "stream", "status"],
            registry=reg,
        )
        self.chat_latency = Histogram(
            "chat_latency_seconds",
            "Chat completion latency (whole request)",
            ["stream"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120),
            registry=reg,
        )
        self.engine_calls = Counter(
            "engine_calls_total", "Context engine calls", ["engine"], registry=reg
        )
        self.engine_degraded = Counter(
            "engine_degraded_total", "Context engine calls that degraded", ["engine"], registry=reg
        )
        self.tool_calls = Counter(
            "tool_calls_total", "Tool calls", ["tool", "side", "status"], registry=reg
        )
        self.realtime_sessions = Gauge(
            "realtime_sessions_active", "Open realtime sessions", registry=reg
        )
        self.http_requests = Counter(
            "http_requests_total", "HTTP requests", ["method", "route", "status"], registry=reg
        )

    def observe_context(self, engines: dict[str, Any]) -> None:
        for name, info in engines.items():
            self.engine_calls.labels(name).inc()
            if isinstance(info, dict) and info.get("degraded"):
                self.engine_degraded.labels(name).inc()

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        if self.multiprocess:
            from prometheus_client import CollectorRegistry, multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
