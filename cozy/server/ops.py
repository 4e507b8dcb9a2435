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

    @get("/ready", summary="Readiness: the store and every engine answer")
    async def ready(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        rt = services(request).runtime
        checks: dict[str, Any] = {}
        try:
            await rt.store.migration_status()
            checks["store"] = {"ok": True}
        except Exception as exc:  # report, never crash the probe
            checks["store"] = {"ok": False, "detail": f"{type(exc).__name__}: {exc}"}
        for kind, h in (await rt.health()).items():
            checks[kind] = {"ok": h.ok, "detail": h.detail}
        ok = all(c["ok"] for c in checks.values())
        return Response(
            {"status": "ready" if ok else "not_ready", "checks": checks},
            status_code=200 if ok else 503,
        )

    @get("/metrics", summary="Prometheus metrics", media_type="text/plain")
    async def metrics(self, request: Request[Any, Any, Any]) -> Response[bytes]:
        payload, content_type = services(request).metrics.render()
        return Response(payload, media_type=content_type)
