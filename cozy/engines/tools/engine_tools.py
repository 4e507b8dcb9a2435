"""Built-in tools over cozy's own engines, so a model can use memory actively.

`memory.search` / `memory.remember` / `memory.forget` and `knowledge.search`, as
closures over live engines. The runtime registers them on the tools engine when
the memory / knowledge engines are configured. The engine ABCs are the contract;
two optional provider methods are used when present (the `local` memory has both):
`remember(user_id, text) -> (id, created)` stores a fact as given (else `add_memory`
extracts facts from the text), and `forget(user_id, memory_id)`, without which
`memory.forget` is not offered.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from cozy.core.errors import CozyError
from cozy.core.types import Message, ToolOutput, ToolSpec
from cozy.engines.base import KnowledgeEngine, MemoryEngine, ToolContext

ToolFn = Callable[[dict[str, Any], ToolContext], Awaitable[Any]]


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": props,
        "required": required,
        "additionalProperties": False,
    }


_QUERY = {"type": "string", "minLength": 1, "description": "what to look for"}
_LIMIT = {"type": "integer", "minimum": 1, "maximum": 20, "description": "max results"}


def memory_tools(memory: MemoryEngine) -> list[tuple[ToolSpec, ToolFn]]:
    async def search(args: dict[str, Any], ctx: ToolContext) -> Any:
        hits = await memory.search_memories(
            str(args["query"]),
            user_id=ctx.caller.user_id,
            limit=int(args.get("limit", 5)),
            personality_id=ctx.personality_id,
        )
        if not hits:
            return "no matching memories"
        return [{"id": h.id, "text": h.text, "score": round(h.score, 3)} for h in hits]

    direct = getattr(memory, "remember", None)

    async def remember(args: dict[str, Any], ctx: ToolContext) -> Any:
        text = str(args["text"]).strip()
        if callable(direct):
            memory_id, created = await direct(ctx.caller.user_id, text)
            return {"id": memory_id, "remembered": text, "new": bool(created)}
        ids = await memory.add_memory(
            [Message("user", text)],
            user_id=ctx.caller.user_id,
            session_id=ctx.session_id,
            personality_id=ctx.personality_id,
        )
        if not ids:
            return "nothing new to remember (already known or not a lasting fact)"
        return {"remembered": text, "ids": list(ids)}

    out: list[tuple[ToolSpec, ToolFn]] = [
        (
            ToolSpec(
                "memory.search",
                "Search what you remember about the user. Returns memory ids and texts.",
                _obj({"query": _QUERY, "limit": _LIMIT}, ["query"]),
                "read-only",
            ),
            search,
        ),
        (
            ToolSpec(
                "memory.remember",
                "Remember a lasting fact about the user (a preference, a name, a plan).",
                _obj(
                    {"text": {"type": "string", "minLength": 1, "maxLength": 2000}},
                    ["text"],
                ),
                "write",
            ),
            remember,
        ),
    ]
    forget_fn = getattr(memory, "forget", None)
    if callable(forget_fn):

        async def forget(args: dict[str, Any], ctx: ToolContext) -> Any:
            memory_id = str(args["memory_id"])
            try:
                await forget_fn(ctx.caller.user_id, memory_id)
            except CozyError as exc:
                return ToolOutput(f"{exc}; find ids with memory.search", is_error=True)
            return f"forgot {memory_id} (undo: `cozy memory restore {memory_id}`)"

        out.append(
            (
                ToolSpec(
                    "memory.forget",
                    "Forget one memory by id (find ids with memory.search).",
                    _obj({"memory_id": {"type": "string", "minLength": 1}}, ["memory_id"]),
                    "write",
                ),
                forget,
            )
        )
    return out


def knowledge_tools(knowledge: KnowledgeEngine) -> list[tuple[ToolSpec, ToolFn]]:
    async def search(args: dict[str, Any], ctx: ToolContext) -> Any:
        collections = args.get("collections") or None
        hits = await knowledge.search_knowledge(
            str(args["query"]),
            user_id=ctx.caller.user_id,
            collections=collections,
            limit=int(args.get("limit", 5)),
        )
        if not hits:
            return "no matching documents"
        return [
            {"text": h.text, "citation": h.citation or h.id, "score": round(h.score, 3)}
            for h in hits
        ]

    props = {
        "query": _QUERY,
        "limit": _LIMIT,
        "collections": {"type": "array", "items": {"type": "string"}},
    }
    spec = ToolSpec(
        "knowledge.search",
        "Search the user's documents. Returns passages with citations to quote.",
        _obj(props, ["query"]),
        "read-only",
    )
    return [(spec, search)]


def engine_tools(*, memory: Any = None, knowledge: Any = None) -> list[tuple[ToolSpec, ToolFn]]:
    """The tools for whichever of the engines are configured."""
    out: list[tuple[ToolSpec, ToolFn]] = []
    if isinstance(memory, MemoryEngine):
        out.extend(memory_tools(memory))
    # the `local` knowledge provider contributes its own collection-aware knowledge.search
    # (once it holds documents); this generic one serves the other providers
    if isinstance(knowledge, KnowledgeEngine) and knowledge.provider_name != "local":
        out.extend(knowledge_tools(knowledge))
    return out
