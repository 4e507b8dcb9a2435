"""Ops routes, no auth: liveness, readiness (engines' health), Prometheus metrics."""

from __future__ import annotations

from typing import Any

from litestar import Controller, Request, Response, get

from cozy.server.deps import services


class OpsController(Controller):
    path = "/"
    tags = ("ops",)

    @get("/health", summary="Liveness")
    async def health(self) -> dict[str, str]:
        return {"status": "ok"}

    @get("/ready", summary="Readiness: a chat turn can be answered and stored")
    async def ready(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """200 exactly when a turn can be answered and stored: the store is writable (a
        full or read-only disk is not) and the default model answers. Optional parts
        (context engines, tools, Redis) that fail are listed under `degraded`: answers
        then come without them, so the instance stays ready."""
        from cozy.runtime.probes import readiness

        ready, checks = await readiness(services(request).runtime)
        degraded = sorted(k for k, c in checks.items() if not c["ok"] and not c["required"])
        body = {"status": "ready" if ready else "not_ready", "degraded": degraded, "checks": checks}
        return Response(body, status_code=200 if ready else 503)

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain")
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        payload, content_type = services(request).metrics.render()
        return Response(payload, media_type=content_type)
