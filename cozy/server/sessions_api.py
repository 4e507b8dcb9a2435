"""CozyChat-compatible session routes. Every route is scoped to the caller:
another user's session answers 404, exactly like one that does not exist."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, delete, get, patch, post
from litestar.params import JSONBody, Parameter

from cozy.server.deps import PathStr, PrincipalDep, services
from cozy.server.schemas import SessionCreate, SessionUpdate
from cozy.storage.store import MessageRow, SessionRow

Limit = Annotated[int, Parameter(ge=1, le=200)]
Offset = Annotated[int, Parameter(ge=0, le=10_000_000)]


def session_dict(s: SessionRow) -> dict[str, Any]:
    out = {
        "id": s.id,
        "object": "chat.session",
        "title": s.title,
        "personality_id": s.personality_id,
        "model": s.model,
        "created_at": s.created_at,
        "updated_at": s.updated_at,
        "metadata": s.metadata,
    }
    if s.message_count is not None:
        out["message_count"] = s.message_count
    return out


def message_dict(m: MessageRow) -> dict[str, Any]:
    return {
        "id": m.id,
        "object": "chat.message",
        "session_id": m.session_id,
        "role": m.role,
        "content": m.content,
        "tool_calls": m.tool_calls,
        "tool_call_id": m.tool_call_id,
        "name": m.name,
        "status": m.status,
        "usage": {"prompt_tokens": m.prompt_tokens, "completion_tokens": m.completion_tokens},
        "created_at": m.created_at,
    }


def _page(items: list[dict[str, Any]], limit: int) -> dict[str, Any]:
    more = len(items) > limit
    return {"object": "list", "data": items[:limit], "has_more": more}


class SessionsController(Controller):
    path = "/v1/chat/sessions"
    tags = ("sessions",)

    @get("/", summary="List your sessions (newest first)")
    async def list_sessions(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        limit: Limit = 50,
        offset: Offset = 0,
        q: Annotated[str | None, Parameter(max_length=200)] = None,
    ) -> dict[str, Any]:
        store = services(request).runtime.store
        rows = await store.list_sessions(
            principal.user_id, limit=limit + 1, offset=offset, query=q or None
        )
        return _page([session_dict(r) for r in rows], limit)

    @post("/", status_code=201, summary="Create a session")
    async def create_session(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        data: JSONBody[SessionCreate],
    ) -> dict[str, Any]:
        rt = services(request).runtime
        pid = rt.personalities.get(data.personality or rt.settings.personality).id
        await rt.store.ensure_user(principal.user_id, role=principal.role)
        row = await rt.store.create_session(
            principal.user_id, pid, title=data.title, model=data.model
        )
        return session_dict(row)

    @get("/{session_id:str}", summary="Get a session")
    async def get_session(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, session_id: PathStr
    ) -> dict[str, Any]:
        store = services(request).runtime.store
        return session_dict(await store.get_session(session_id, user_id=principal.user_id))

    @patch("/{session_id:str}", summary="Rename a session")
    async def rename_session(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        session_id: PathStr,
        data: JSONBody[SessionUpdate],
    ) -> dict[str, Any]:
        store = services(request).runtime.store
        await store.get_session(session_id, user_id=principal.user_id)
        await store.update_session(session_id, principal.user_id, title=data.title.strip())
        return session_dict(await store.get_session(session_id, user_id=principal.user_id))

    @delete("/{session_id:str}", status_code=200, summary="Delete a session (soft)")
    async def delete_session(
        self, request: Request[Any, Any, Any], principal: PrincipalDep, session_id: PathStr
    ) -> dict[str, Any]:
        store = services(request).runtime.store
        await store.delete_session(session_id, principal.user_id)
        return {"id": session_id, "object": "chat.session.deleted", "deleted": True}

    @get("/{session_id:str}/messages", summary="A session's messages (oldest first)")
    async def list_messages(
        self,
        request: Request[Any, Any, Any],
        principal: PrincipalDep,
        session_id: PathStr,
        limit: Limit = 50,
        offset: Offset = 0,
    ) -> dict[str, Any]:
        store = services(request).runtime.store
        await store.get_session(session_id, user_id=principal.user_id)
        rows = await store.list_messages(session_id, limit=limit + 1, offset=offset)
        return _page([message_dict(r) for r in rows], limit)
