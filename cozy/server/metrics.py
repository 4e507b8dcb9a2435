"""Prometheus metrics, one registry per app (so several apps can live in one process).

With `--workers N` each worker counts its own requests; set PROMETHEUS_MULTIPROC_DIR
to aggregate them (prometheus-client's multiprocess mode).
"""

from __future__ import annotations

from collections.abc import Collection, MutableMapping
from typing import Any

# Every label value comes from a closed set, so no client can grow the series count:
# routes are templates (`other` for no route), methods the standard ones, models only
# the configured ones, client-side tool names one value.
OTHER = "other"
MAX_TOOLS = 128
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


def route_label(scope: MutableMapping[str, Any]) -> str:
    """The matched route's template (`/v1/chat/sessions/{session_id:str}`), else `other`."""
    template = scope.get("path_template")
    return template if isinstance(template, str) and template else OTHER


def method_label(method: str) -> str:
    return method if method in METHODS else OTHER


def model_label(model: str, known: Collection[str]) -> str:
    """The request's model when it is a configured one (personality, alias, default)."""
    return model if model in known else OTHER


class Metrics:
    def __init__(self) -> None:
        import os

        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self._tools: set[str] = set()
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
        self.jobs_backlog = Gauge(
            "jobs_backlog", "Background jobs pending (estimate)", registry=reg
        )
        self.jobs_dropped = Counter(
            "jobs_dropped_total",
            "Background jobs not queued: the backlog was over its limit",
            ["kind"],
            registry=reg,
        )
        self._dropped_seen: dict[str, int] = {}

    def tool_label(self, name: str) -> str:
        """Server-side tool names are the configured tools, but a model may call a name
        that does not exist: the first MAX_TOOLS names are labels, later ones `other`."""
        if name in self._tools:
            return name
        if len(self._tools) < MAX_TOOLS:
            self._tools.add(name)
            return name
        return OTHER

    def observe_context(self, engines: dict[str, Any]) -> None:
        for name, info in engines.items():
            self.engine_calls.labels(name).inc()
            if isinstance(info, dict) and info.get("degraded"):
                self.engine_degraded.labels(name).inc()

    def _jobs(self) -> None:
        from cozy.storage.jobs import backlog

        self.jobs_backlog.set(backlog.estimate())
        for kind, total in list(backlog.dropped.items()):
            new = total - self._dropped_seen.get(kind, 0)
            if new > 0:
                self.jobs_dropped.labels(kind).inc(new)
                self._dropped_seen[kind] = total

    def render(self) -> tuple[bytes, str]:
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        self._jobs()

        if self.multiprocess:
            from prometheus_client import CollectorRegistry, multiprocess

            registry = CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
            return generate_latest(registry), CONTENT_TYPE_LATEST
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
