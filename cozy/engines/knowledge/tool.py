"""The built-in tool `knowledge.search`, contributed through the builtin tools registry.

The runtime builds the knowledge engine before the tools engine, so the tool is
declared with `register_builtin` (picked up by every BuiltinTools created after);
if a tools engine already exists it is added to that instance too. The tool keeps a
weak reference to its engine and is withdrawn when the engine closes.
A personality that names collections limits the tool to them.
"""

from __future__ import annotations

import weakref
from typing import Any

from cozy.core.types import ToolOutput, ToolSpec
from cozy.engines.base import ToolContext
from cozy.engines.knowledge.parts import KnowledgeParts

TOOL_NAME = "knowledge.search"
SNIPPET_CHARS = 700

_owner: weakref.ref[KnowledgeParts] | None = None


def tool_spec() -> ToolSpec:
    return ToolSpec(
        name=TOOL_NAME,
        description="Search the user's indexed documents (notes, docs, code). Returns passages "
        "with citations (path, heading, lines or page); cite them in the answer.",
        parameters={
            "type": "object",
            "properties": {
                "query": {"type": "string", "description": "what to look for"},
                "collection": {"type": "string", "description": "one collection to search"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 20},
            },
            "required": ["query"],
            "additionalProperties": False,
        },
        level="read-only",
        server="builtin",
    )


def allowed_collections(engine: KnowledgeParts, personality_id: str | None) -> list[str]:
    collections_of = engine.ctx.collections_of
    if collections_of is None or not personality_id:
        return []
    try:
        return list(collections_of(personality_id))
    except Exception:
        return []


def make_tool(engine: KnowledgeParts) -> Any:
    ref = weakref.ref(engine)

    async def knowledge_search(arguments: dict[str, Any], ctx: ToolContext) -> ToolOutput:
        live = ref()
        if live is None:
            return ToolOutput("the knowledge engine is closed", is_error=True)
        allowed = allowed_collections(live, ctx.personality_id)
        wanted = arguments.get("collection")
        if wanted and allowed and wanted not in allowed:
            return ToolOutput(
                f"collection '{wanted}' is not available to this personality; "
                f"allowed: {', '.join(allowed)}",
                is_error=True,
            )
        collections = [wanted] if wanted else (allowed or None)
        hits = await live.search(
            str(arguments["query"]),
            user_id=ctx.caller.user_id,
            collections=collections,
            limit=int(arguments.get("limit", 5)),
            wait=live.embed_wait,  # a turn waits on it: keywords rather than a cold start
        )
        if not hits:
            return ToolOutput("no matching passages in the user's documents")
        parts = []
        for i, hit in enumerate(hits, 1):
            text = hit.text if len(hit.text) <= SNIPPET_CHARS else hit.text[:SNIPPET_CHARS] + "…"
            parts.append(f"[{i}] {hit.citation}\n{text}")
        return ToolOutput("\n\n".join(parts))

    return knowledge_search


def register_tool(engine: KnowledgeParts) -> None:
    global _owner
    from cozy.engines.tools.builtin import register_builtin

    fn = make_tool(engine)
    register_builtin(tool_spec(), fn, replace=True)
    _owner = weakref.ref(engine)
    if engine.ctx.offer_tool is not None:
        engine.ctx.offer_tool(tool_spec(), fn)


def unregister_tool(engine: KnowledgeParts) -> None:
    global _owner
    if _owner is not None and _owner() is engine:
        from cozy.engines.tools.builtin import unregister_builtin

        unregister_builtin(TOOL_NAME)
        _owner = None
