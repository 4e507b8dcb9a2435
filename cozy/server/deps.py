"""What handlers get injected (the app's services, the authenticated principal) and
`until_disconnect`, for work a departed client should stop."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Annotated, Any

from litestar import Request
from litestar.connection import ASGIConnection
from litestar.di import NamedDependency
from litestar.params import Parameter

from cozy.runtime import Runtime
from cozy.server.auth import Authenticator, Principal
from cozy.server.config import ServerSettings
from cozy.server.metrics import Metrics
from cozy.server.ratelimit import RateLimiter
from cozy.server.tracing import Tracing

PrincipalDep = NamedDependency[Principal]
PathStr = Annotated[str, Parameter(max_length=300)]


@dataclass(slots=True)
class Services:
    runtime: Runtime
    server: ServerSettings
    auth: Authenticator
    limiter: RateLimiter
    metrics: Metrics
    tracing: Tracing


def services(request: Request[Any, Any, Any]) -> Services:
    svc: Services = request.app.state.services
    return svc


async def auth_guard(connection: ASGIConnection[Any, Any, Any, Any], _: Any) -> None:
    """Per-IP limit, then authentication, then the per-key limit — before the body is read."""
    svc: Services = connection.app.state.services
    ip = connection.client.host if connection.client else "unknown"
    await svc.limiter.check_ip(ip)
    principal = await svc.auth.authenticate(connection.headers.get("authorization"))
    state = connection.scope["state"]
    state["principal"] = principal
    state["user_id"] = principal.user_id
    svc.limiter.use_stored_budget(principal.user_id, principal.budget, principal.read_at)
    await svc.limiter.check_principal(principal.limit_scopes)


async def provide_principal(request: Request[Any, Any, Any]) -> Principal:
    principal: Principal = request.scope["state"]["principal"]
    return principal


async def until_disconnect(request: Request[Any, Any, Any], work: Any) -> Any:
    """Await `work`, cancelling it when the client disconnects. uvicorn does not cancel
    a handler whose client left; the ASGI `http.disconnect` message says so, and once
    the body has been read, the next `receive()` waits for exactly that."""
    task = asyncio.ensure_future(work)

    async def watch() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
        task.cancel()

    watcher = asyncio.ensure_future(watch())
    try:
        return await task
    except asyncio.CancelledError:
        if task.cancelled() and watcher.done():
            from cozy.core.errors import Cancelled

            raise Cancelled("the client disconnected") from None
        raise
    finally:
        watcher.cancel()
        task.cancel()
