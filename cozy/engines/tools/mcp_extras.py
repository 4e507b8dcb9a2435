"""MCP beyond tools: prompts and resources of a connected server, as plain data.

Faces get dicts and text (never SDK types): a prompt rendered to messages, a resource
read to text with its MIME type, so `cozy run --prompt/--resource` and the TUI can use
them without knowing the SDK.
"""

from __future__ import annotations

import asyncio
import base64
from dataclasses import dataclass, field
from typing import Any

from cozy.core.errors import NotFoundError, ToolError

MAX_RESOURCE_CHARS = 200_000


@dataclass(slots=True)
class PromptInfo:
    server: str
    name: str
    description: str = ""
    arguments: list[dict[str, Any]] = field(default_factory=list)

    @property
    def qualified(self) -> str:
        return f"{self.server}.{self.name}"


@dataclass(slots=True)
class ResourceInfo:
    server: str
    uri: str
    name: str = ""
    mime_type: str | None = None
    description: str = ""


@dataclass(slots=True)
class ResourceText:
    server: str
    uri: str
    text: str
    mime_type: str | None = None
    truncated: bool = False


async def _paged(fetch: Any, attr: str, timeout: float) -> list[Any]:  # noqa: ASYNC109
    from mcp_types import PaginatedRequestParams

    out: list[Any] = []
    cursor: str | None = None
    async with asyncio.timeout(timeout or None):
        while True:
            result = await fetch(params=PaginatedRequestParams(cursor=cursor) if cursor else None)
            out.extend(getattr(result, attr))
            cursor = result.next_cursor
            if not cursor:
                return out


def supports(session: Any, feature: str) -> bool:
    caps = getattr(session, "server_capabilities", None)
    if caps is None:
        getter = getattr(session, "get_server_capabilities", None)
        caps = getter() if callable(getter) else None
    return caps is None or getattr(caps, feature, None) is not None


async def list_prompts(server: str, session: Any, timeout: float) -> list[PromptInfo]:  # noqa: ASYNC109
    if not supports(session, "prompts"):
        return []
    prompts = await _paged(session.list_prompts, "prompts", timeout)
    return [
        PromptInfo(
            server=server,
            name=p.name,
            description=p.description or getattr(p, "title", None) or "",
            arguments=[
                {"name": a.name, "description": a.description or "", "required": bool(a.required)}
                for a in (p.arguments or [])
            ],
        )
        for p in prompts
    ]


async def get_prompt(
    server: str,
    session: Any,
    name: str,
    arguments: dict[str, str],
    timeout: float,  # noqa: ASYNC109
) -> list[dict[str, str]]:
    """The prompt rendered by the server: [{"role", "content"}] with text content."""
    from mcp.shared.exceptions import MCPError

    try:
        async with asyncio.timeout(timeout or None):
            result = await session.get_prompt(name, arguments)
    except MCPError as exc:
        raise ToolError(
            f"{server}.{name}: the server refused the prompt: {exc.message}",
            hint=f"`cozy tools prompts --server {server}` lists its prompts and arguments",
        ) from exc
    return [{"role": m.role, "content": content_text(m.content)} for m in result.messages]


async def list_resources(server: str, session: Any, timeout: float) -> list[ResourceInfo]:  # noqa: ASYNC109
    if not supports(session, "resources"):
        return []
    resources = await _paged(session.list_resources, "resources", timeout)
    return [
        ResourceInfo(
            server=server,
            uri=str(r.uri),
            name=r.name or "",
            mime_type=r.mime_type,
            description=r.description or "",
        )
        for r in resources
    ]


async def read_resource(server: str, session: Any, uri: str, timeout: float) -> ResourceText:  # noqa: ASYNC109
    from mcp.shared.exceptions import MCPError

    try:
        async with asyncio.timeout(timeout or None):
            result = await session.read_resource(uri)
    except MCPError as exc:
        raise NotFoundError(
            f"{server}:{uri}: the server could not read it: {exc.message}",
            hint=f"`cozy tools resources --server {server}` lists what it offers",
        ) from exc
    parts: list[str] = []
    mime: str | None = None
    for item in result.contents:
        mime = mime or getattr(item, "mime_type", None)
        text = getattr(item, "text", None)
        if text is not None:
            parts.append(text)
        else:
            size = len(base64.b64decode(getattr(item, "blob", "") or ""))
            kind = getattr(item, "mime_type", None) or "binary"
            parts.append(f"[{kind} content, {size} bytes, not shown]")
    text = "\n".join(parts)
    cut = len(text) > MAX_RESOURCE_CHARS
    return ResourceText(server, uri, text[:MAX_RESOURCE_CHARS], mime, cut)


async def subscribe(session: Any, uri: str, timeout: float) -> bool:  # noqa: ASYNC109
    """resources/subscribe when the server offers it; False when it does not or refuses
    (the resource is then read afresh each time)."""
    caps = getattr(session, "server_capabilities", None)
    resources = getattr(caps, "resources", None) if caps is not None else None
    if not getattr(resources, "subscribe", False):
        return False
    import warnings

    from mcp.shared.exceptions import MCPDeprecationWarning, MCPError

    try:
        # the 2026-07-28 spec replaces it with a listen stream; servers of earlier
        # versions (all the common ones) still offer it, later ones refuse it (-> False)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", MCPDeprecationWarning)
            async with asyncio.timeout(timeout or None):
                await session.subscribe_resource(uri)
    except (MCPError, TimeoutError):
        return False
    return True


def content_text(content: Any) -> str:
    """One MCP content block as text (a placeholder for media)."""
    kind = getattr(content, "type", None)
    if kind == "text":
        return str(content.text)
    if kind == "resource":
        inner = content.resource
        text = getattr(inner, "text", None)
        return text if text is not None else f"[resource {inner.uri}]"
    if kind in ("image", "audio"):
        return f"[{kind} {getattr(content, 'mime_type', '')}]"
    if kind == "resource_link":
        return f"[resource {getattr(content, 'uri', '')}]"
    return str(content)
