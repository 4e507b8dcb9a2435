"""The Litestar app of the fake model server (imported only when the server starts)."""

from __future__ import annotations

from typing import Any

from litestar import Litestar

from cozy.testing import ollama_api, openai_api
from cozy.testing.script import ServerState


def create_app(server: ServerState) -> Any:
    return Litestar(
        route_handlers=[*openai_api.routes(server), *ollama_api.routes(server)],
        openapi_config=None,
        debug=False,
    )
