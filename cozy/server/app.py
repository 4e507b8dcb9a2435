"""The Litestar app factory: `create_app(settings)`.

Controllers are a list, so a new API (e.g. `/v1/audio/*` in `cozy/server/audio.py`)
is one line in `default_controllers()`. Resources (runtime, rate-limit store,
tracing) open in the lifespan and close on shutdown.
"""

from __future__ import annotations

import logging
import os
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

from litestar import Litestar
from litestar.di import Provide
from litestar.openapi import OpenAPIConfig
from litestar.openapi.spec import Components, SecurityScheme
from litestar.plugins.pydantic import PydanticPlugin

from cozy import __version__
from cozy.runtime import Runtime
from cozy.server.auth import Authenticator
from cozy.server.body import strict_json_body
from cozy.server.config import ServerSettings
from cozy.server.deps import Services, auth_guard, provide_principal
from cozy.server.errors import exception_handlers
from cozy.server.metrics import Metrics
from cozy.server.middleware import ObservabilityMiddleware
from cozy.server.ratelimit import RateLimiter
from cozy.server.ratelimit_redis import counter_store
from cozy.server.responses import document
from cozy.server.tracing import Tracing
from cozy.settings import Settings, load_settings

log = logging.getLogger("cozy.server")


def default_controllers() -> list[type]:
    from cozy.server.audio import AudioController
    from cozy.server.embeddings_api import EmbeddingsController
    from cozy.server.knowledge_api import KnowledgeController
    from cozy.server.openai_api import OpenAIController
    from cozy.server.personalities_api import PersonalitiesController
    from cozy.server.realtime import RealtimeController
    from cozy.server.sessions_api import SessionsController
    from cozy.server.users_api import UsersController

    controllers: list[type] = [
        OpenAIController,
        EmbeddingsController,
        SessionsController,
        PersonalitiesController,
        AudioController,
        RealtimeController,
        KnowledgeController,
        UsersController,
    ]
    if os.environ.get("COZY_SERVER_WEBRTC", "").lower() in ("1", "true", "yes"):
        from cozy.server.webrtc import webrtc_handlers  # `cozy serve --webrtc`

        controllers += webrtc_handlers()
    return controllers


def create_app(
    settings: Settings | None = None,
    server: ServerSettings | None = None,
    *,
    controllers: Sequence[type] | None = None,
    runtime: Runtime | None = None,
) -> Litestar:
    """Build the app. Pass `runtime` to share an already open one (it is not closed)."""
    from litestar import Router

    from cozy.server.ops import OpsController
    from cozy.server.voice_page import VoicePageController  # public page, outside auth

    settings = settings or load_settings()
    server = server or ServerSettings()
    server.check_bind()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: Litestar) -> AsyncIterator[None]:
        rt = runtime or await Runtime.open(settings)
        limiter = RateLimiter(
            counter_store(settings, rt.redis),  # Redis (shared by instances) or diskcache
            server.limits(),
        )
        tracing = Tracing(server.otel_exporter, server.otel_endpoint)
        app.state.services = Services(
            rt, server, Authenticator(rt.store, server, settings), limiter, metrics, tracing
        )
        app.state.tracing = tracing if tracing.enabled else None
        if runtime is None:
            # memory, profile, summaries, ingestion: every instance claims jobs (leases on
            # SQLite, SKIP LOCKED on Postgres), so a served turn's jobs run in the background
            rt.start_worker()
        from cozy.server.memtrim import IdleTrim, malloc_trim

        idle = IdleTrim(trim=malloc_trim())
        app.state.idle_trim = idle
        try:
            async with idle.running():
                yield
        finally:
            tracing.shutdown()
            limiter.close()
            if runtime is None:
                await rt.close()

    api = Router(
        path="/",
        route_handlers=list(controllers if controllers is not None else default_controllers()),
        guards=[auth_guard],
        before_request=strict_json_body,  # Content-Type, depth, no coercion: see body.py
        dependencies={"principal": Provide(provide_principal)},
        security=[{"BearerAuth": []}],
    )
    app = Litestar(
        route_handlers=[api, OpsController, VoicePageController],
        lifespan=[lifespan],
        exception_handlers=exception_handlers(),
        request_max_body_size=server.max_body_bytes,
        openapi_config=OpenAPIConfig(
            title="cozy",
            version=__version__,
            description="OpenAI-compatible chat, models and embeddings, plus cozy sessions "
            "and personalities. Authenticate with `Authorization: Bearer KEY`.",
            components=Components(
                security_schemes={"BearerAuth": SecurityScheme(type="http", scheme="bearer")}
            ),
        ),
        debug=False,
        logging_config=None,
        # pydantic bodies (audio) without coercion too: `"stream": 0` is no boolean
        plugins=[PydanticPlugin(validate_strict=True)],
    )
    document(_http_handlers(app))  # every operation's error statuses, one error body
    app.state.metrics = metrics
    app.state.tracing = None
    app.asgi_handler = ObservabilityMiddleware(app.asgi_handler)
    return app


def _http_handlers(app: Litestar) -> list[Any]:
    out: list[Any] = []
    for route in app.routes:
        out.extend(getattr(route, "route_handlers", ()))
    return out


def create_app_from_env() -> Litestar:
    """Factory for `uvicorn --factory` / `--workers N`: settings from the environment.

    A worker process starts fresh (spawned): it sets up JSON logging itself, from the
    COZY_LOG_* variables `cozy serve` exported."""
    from cozy.observability.logging import setup_server_logging

    settings = load_settings()
    setup_server_logging(settings.log_level, settings.log_format)
    return create_app(settings, ServerSettings())
