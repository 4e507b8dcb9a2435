"""Requests an MCP server sends to cozy: sampling, elicitation, roots.

The answers come from the face and the turn that made the tool call, through its
ToolContext.extra:

- `sample(server, messages, system, max_tokens) -> (text, model)`: cozy's model for
  the turn's personality answers, after the face's approval, within a token cap;
- `elicit(server, message, schema) -> (action, content)`: the user fills the server's
  form (terminal prompt); faces without one (HTTP) have none and the server is told so.

Roots are the directories a server may work in: its `roots:` in engines.yaml, else
its working directory.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from cozy.core.errors import CozyError

NO_SAMPLING = (
    "cozy answers sampling requests only during a chat turn that called this server's tool "
    "(`cozy run` / the TUI), with the user's approval"
)
NO_ELICITATION = (
    "this cozy face cannot ask the user (elicitation works in the terminal; over HTTP it "
    "is refused)"
)


def _text_of(content: Any) -> str:
    from cozy.engines.tools.mcp_extras import content_text

    if isinstance(content, list):
        return "\n".join(content_text(c) for c in content)
    return content_text(content)


class ServerRequests:
    """The client-side callbacks of one server's ClientSession."""

    def __init__(self, server: str, roots: list[str]) -> None:
        self.server = server
        self.roots = roots
        self.active: dict[str, Any] = {}  # the running call's ToolContext.extra
        # the running call's timeout: the time a person spends on the server's form
        # (elicitation) is added back to it, so a slow answer is not a timed-out tool
        self.deadline: asyncio.Timeout | None = None

    @contextlib.asynccontextmanager
    async def _user_time(self) -> AsyncIterator[None]:
        """Stop the call's clock while a person answers; restart it with what was left."""
        deadline = self.deadline
        when = deadline.when() if deadline is not None else None
        if deadline is None or when is None or deadline.expired():
            yield
            return
        loop = asyncio.get_running_loop()
        left = max(when - loop.time(), 0.0)
        deadline.reschedule(None)
        try:
            yield
        finally:
            with contextlib.suppress(RuntimeError):  # the call ended meanwhile
                deadline.reschedule(loop.time() + left)

    async def sampling(self, context: Any, params: Any) -> Any:
        import mcp_types as t

        sample = self.active.get("sample")
        if sample is None:
            return t.ErrorData(code=t.INVALID_REQUEST, message=NO_SAMPLING)
        messages = [{"role": m.role, "content": _text_of(m.content)} for m in params.messages]
        try:
            text, model = await sample(
                self.server, messages, params.system_prompt, int(params.max_tokens)
            )
        except CozyError as exc:
            return t.ErrorData(code=t.INVALID_REQUEST, message=str(exc))
        return t.CreateMessageResult(
            role="assistant",
            content=t.TextContent(type="text", text=text),
            model=model,
            stop_reason="endTurn",
        )

    async def elicitation(self, context: Any, params: Any) -> Any:
        import mcp_types as t

        elicit = self.active.get("elicit")
        schema = getattr(params, "requested_schema", None)
        if elicit is None or schema is None:
            return t.ErrorData(code=t.INVALID_REQUEST, message=NO_ELICITATION)
        if not isinstance(schema, dict):
            schema = schema.model_dump(by_alias=True, exclude_none=True)
        async with self._user_time():
            action, content = await elicit(self.server, params.message, schema)
        return t.ElicitResult(action=action, content=content)

    async def list_roots(self, context: Any) -> Any:
        import mcp_types as t

        return t.ListRootsResult(
            roots=[
                t.Root.model_validate({"uri": Path(p).as_uri(), "name": Path(p).name})
                for p in self.roots
            ]
        )
