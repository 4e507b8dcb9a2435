"""Health and readiness probes over an open runtime (the server's `/ready`)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from cozy.core.deadline import answer_within
from cozy.core.errors import CozyError, EngineError
from cozy.engines.base import BaseEngine, Health

if TYPE_CHECKING:
    from cozy.runtime import Runtime

# s per readiness check: it must answer before the prober gives up (a late check is then
# abandoned, not waited for while it unwinds: see core/deadline.py)
READY_TIMEOUT = 5.0


async def health(rt: Runtime) -> dict[str, Health]:
    """Each engine's health check, in parallel and each within READY_TIMEOUT; Redis's."""
    out: dict[str, Health] = {}

    async def check(kind: str, engine: BaseEngine) -> None:
        try:
            out[kind] = await answer_within(READY_TIMEOUT, engine.health_check())
        except TimeoutError:
            out[kind] = Health(ok=False, detail=f"no answer within {READY_TIMEOUT:g}s")
        except (CozyError, OSError) as exc:
            out[kind] = Health(ok=False, detail=str(exc))

    # in parallel: a probe's time is the slowest check's, not their sum
    await asyncio.gather(*(check(k, e) for k, e in list(rt.engines.items())))
    if rt.redis is not None:
        # degraded, not down: the instance still serves (per-instance limits, no L2)
        ok, detail = await rt.redis.status()
        fix = "" if ok else "bring Redis back at COZY_REDIS_URL"
        out["redis"] = Health(ok=True, detail=detail if ok else "DEGRADED: " + detail, fix=fix)
    return out


async def readiness(rt: Runtime) -> tuple[bool, dict[str, dict[str, Any]]]:
    """Can a chat turn be answered and stored right now? (`/ready`, doctor)

    Required: the store is writable, and the default model answers. Everything else
    (context engines, tools, Redis) is optional: when it fails the answer comes
    without it, so it is reported as degraded, never as not ready."""
    checks: dict[str, dict[str, Any]] = {}

    async def required(name: str, check: Any) -> None:
        try:
            detail = await answer_within(READY_TIMEOUT, check())
            checks[name] = {"ok": True, "required": True, "detail": detail}
        except (CozyError, TimeoutError, OSError) as exc:
            detail = getattr(exc, "message", "") or f"no answer within {READY_TIMEOUT:g}s"
            fix = getattr(exc, "hint", None) or ""
            checks[name] = {"ok": False, "required": True, "detail": detail, "fix": fix}

    async def model() -> str:
        # `auto` falls back to the embedded model when Ollama/OpenAI are gone: then
        # that model is what answers (the Ollama probe runs off the event loop)
        provider = (await rt.router.decide()).provider
        health = await (await rt.router.engine(provider)).health_check()
        if not health.ok:
            raise EngineError(health.detail, hint=health.fix or None)
        return f"{provider}: {health.detail}"

    # all at once: the answer's time is one check's deadline, not the sum (a frozen
    # database made the store check and then the engines' checks wait 5 s each)
    _, _, healths = await asyncio.gather(
        required("store", rt.store.check_writable), required("model", model), health(rt)
    )
    for kind, h in healths.items():
        ok = h.ok and not h.detail.startswith("DEGRADED")
        checks[kind] = {"ok": ok, "required": False, "detail": h.detail}
        if h.fix:
            checks[kind]["fix"] = h.fix
    ready = all(c["ok"] for c in checks.values() if c["required"])
    return ready, checks
