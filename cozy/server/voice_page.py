"""`GET /voice`: a small browser page for talking to cozy (push-to-talk or hands-free).

The page itself is public (it holds no data); everything it does goes through
`WS /v1/realtime` with the user's key, sent as the `openai-insecure-api-key.KEY`
subprotocol (browsers cannot set an Authorization header on a WebSocket). The key is
typed into the page and kept in the browser's localStorage, or given once as `?key=`.
"""

from __future__ import annotations

from functools import cache
from importlib import resources

from litestar import Controller, Response, get

from cozy.server.responses import media_operation

PAGE = "voice.html"


@cache
def page_html() -> str:
    return resources.files("cozy.server").joinpath("static", PAGE).read_text(encoding="utf-8")


class VoicePageController(Controller):
    path = "/voice"
    tags = ("voice",)

    @get(
        "/",
        summary="Browser voice page (push-to-talk, hands-free, interrupt)",
        operation_class=media_operation("text/html"),
    )
    async def voice(self) -> Response[str]:
        return Response(
            page_html(),
            media_type="text/html; charset=utf-8",
            headers={
                "Cache-Control": "no-store",
                "Referrer-Policy": "no-referrer",  # `?key=` must not leak to other sites
                "X-Content-Type-Options": "nosniff",
            },
        )
