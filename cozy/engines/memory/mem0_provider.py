"""`memory.mem0`: chat memory kept by the mem0 library (extra `mem0`).

mem0's LLM and embedder are cozy's own engines (the configured AI engine and the
`embed:` engine), so the same model and vectors serve every memory provider. Its
files live under COZY_HOME: `mem0/qdrant` (local vector store), `mem0/history.db`,
`mem0/config.json`. Telemetry is forced off.

Options (engines.yaml `memory:`):

- `infer`: true (default) lets mem0 extract facts with the model; false stores the
  messages as they are (no model call)
- `model`: the model for extraction (`provider:model`; default: the AI default)
- `threshold`: minimum search score (default 0.0)
- `collection`: collection name (default `cozy_<dims>`)
- `path`: store directory (default `<COZY_HOME>/mem0`)
- `vector_store`: a mem0 vector store config for server mode, e.g.
  `{provider: pgvector, config: {connection_string: postgresql://...}}`
- `call_timeout`: seconds one model/embedding call made by mem0 may take (default 60)
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any, ClassVar

from cozy.core.errors import ConfigError, CozyError, NotFoundError, UsageError
from cozy.core.types import GenerationOptions, MemoryHit, Message
from cozy.engines.base import EmbedEngine, EngineContext, EngineOptions, Health, MemoryEngine
from cozy.engines.memory import mem0_bridge as bridge
from cozy.engines.memory.mem0_records import MAX_LISTED, Mem0Record, history_row
from cozy.engines.opening import Opening, library_home

log = logging.getLogger("cozy.memory.mem0")


class Mem0Options(EngineOptions):
    infer: bool = True
    model: str | None = None
    threshold: float = 0.0
    call_timeout: float = 60.0
    collection: str | None = None
    vector_store: Any = None  # a mem0 vector store config (checked below)
    path: str | None = None


class Mem0Memory(MemoryEngine):
    """Also `ManagesMemories` (engines/base.py): `cozy memory` and the TUI browser list,
    add, edit, forget and export mem0's memories. mem0 deletes for good and keeps no
    memory kinds: `restore` says so, `list --all/--turns` list what there is."""

    Options = Mem0Options
    provider_name: ClassVar[str] = "mem0"
    restorable: ClassVar[bool] = False

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = Mem0Options.of(self.options, "memory")
        self.infer = o.infer
        self.model: str | None = o.model
        self.threshold = o.threshold
        self.call_timeout = o.call_timeout
        self.collection: str | None = o.collection
        store = o.vector_store
        if store is not None and not (isinstance(store, dict) and "provider" in store):
            raise ConfigError(
                "memory.vector_store must be a mem0 vector store config with a provider",
                hint="e.g. `vector_store: {provider: pgvector, config: {...}}`",
            )
        self.vector_store: dict[str, Any] | None = store
        self.path = library_home(self.ctx, o.path, "mem0", "memory.mem0")
        self._embedder: EmbedEngine | None = self.ctx.embedder
        self._memory: Any = None
        self._key: str | None = None
        self._opening = Opening(self._open, lambda exc: log.warning("mem0: %s", exc))

    # --- lifecycle ------------------------------------------------------------------
    async def initialize(self) -> None:
        self._opening.start()  # mem0 takes seconds to import (engines/opening.py)

    async def _embed_engine(self) -> EmbedEngine:
        if self._embedder is None and self.ctx.load_embedder is not None:
            self._embedder = await self.ctx.load_embedder()
        if self._embedder is None:
            raise ConfigError(
                "memory.mem0 needs an embedder",
                hint="add `embed: {provider: local}` to engines.yaml",
            )
        return self._embedder

    async def _open(self) -> Any:
        embedder = await self._embed_engine()
        dims = int(getattr(embedder, "dimensions", 0) or 0)
        if not dims:
            dims = len((await embedder.embed(["dimension probe"]))[0])
        collection = self.collection or f"cozy_{dims}"
        key = f"{self.path}:{collection}:{self.vector_store!r}"

        def build() -> Any:
            return bridge.build_memory(
                self.path, dims=dims, collection=collection, vector_store=self.vector_store
            )

        try:
            memory = await asyncio.to_thread(bridge.shared_clients.acquire, key, build)
        except CozyError:
            raise
        except Exception as exc:
            raise bridge.translate(exc, path=self.path) from exc
        self._memory, self._key = memory, key
        return memory

    async def client(self) -> Any:
        if self._memory is not None:
            return self._memory
        return await self._opening.get()

    async def close(self) -> None:
        await self._opening.cancel(wait=True)
        if self._key is not None:
            key, self._key, self._memory = self._key, None, None
            await asyncio.to_thread(bridge.shared_clients.release, key)

    async def health_check(self) -> Health:
        try:
            memory = await asyncio.wait_for(self.client(), 30)
            count = await self._run(memory.vector_store.col_info)
        except Exception as exc:
            err = bridge.translate(exc, path=self.path)  # a cozy error as it is
            return Health(ok=False, detail=err.message, fix=err.hint or "")
        points = getattr(count, "points_count", None)
        where = self.vector_store["provider"] if self.vector_store else f"qdrant at {self.path}"
        return Health(
            ok=True,
            detail=f"mem0 ({where}, infer={'on' if self.infer else 'off'}"
            + (f", {points} memories)" if points is not None else ")"),
        )

    # --- the bridge into cozy's engines -------------------------------------------
    def _host(self) -> bridge.Host:
        return bridge.Host(
            loop=asyncio.get_running_loop(),
            chat=self._chat,
            embed=self._embed,
            timeout=self.call_timeout,
        )

    async def _chat(self, messages: list[dict[str, Any]], response_format: Any) -> str:
        router = self.ctx.router
        if router is None:
            raise ConfigError("memory.mem0 needs the runtime for model calls")
        route = await router.resolve(self.model)
        msgs = [Message(m.get("role", "user"), str(m.get("content", ""))) for m in messages]
        options = GenerationOptions(temperature=0.0, response_format=response_format)
        result = await route.engine.chat(msgs, model=route.model, options=options)
        return str(result.content)

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        engine = await self._embed_engine()
        return await engine.embed(texts)

    async def _run(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        token = bridge.current_host.set(self._host())
        try:
            return await asyncio.to_thread(fn, *args, **kwargs)
        except CozyError:
            raise
        except Exception as exc:
            raise bridge.translate(exc, path=self.path) from exc
        finally:
            bridge.current_host.reset(token)

    # --- the memory interface -------------------------------------------------------
    async def search_memories(
        self,
        query: str,
        *,
        user_id: str,
        limit: int = 5,
        personality_id: str | None = None,
        session_id: str | None = None,
    ) -> list[MemoryHit]:
        if not query.strip():
            return []
        memory = await self.client()
        found = await self._run(
            memory.search,
            query,
            top_k=limit,
            filters={"user_id": user_id},
            threshold=self.threshold,
        )
        return [_hit(r) for r in _results(found)[:limit]]

    async def add_memory(
        self,
        messages: Sequence[Message],
        *,
        user_id: str,
        session_id: str | None = None,
        personality_id: str | None = None,
        source_ids: Sequence[str] = (),
        infer: bool | None = None,
    ) -> list[str]:
        turn = [
            {"role": m.role, "content": m.content}
            for m in messages
            if m.role in ("user", "assistant") and m.content.strip()
        ]
        if not turn:
            return []
        metadata: dict[str, Any] = {"source_ids": list(source_ids)}
        if session_id:
            metadata["session_id"] = session_id
        if personality_id:
            metadata["personality_id"] = personality_id
        memory = await self.client()
        out = await self._run(
            memory.add,
            turn,
            user_id=user_id,
            metadata=metadata,
            infer=self.infer if infer is None else infer,
        )
        return [str(r["id"]) for r in _results(out) if r.get("id")]

    async def delete_all(self, user_id: str) -> None:
        memory = await self.client()
        await self._run(memory.delete_all, user_id=user_id)

    # --- what the user manages (cozy memory, the TUI browser) --------------------------
    async def list_memories(
        self, user_id: str, *, kinds: Sequence[str] = ("fact",), include_removed: bool = False
    ) -> list[Mem0Record]:
        memory = await self.client()
        out = await self._run(memory.get_all, filters={"user_id": user_id}, top_k=MAX_LISTED)
        rows = [Mem0Record.of(r) for r in _results(out)]
        rows.sort(key=lambda r: r.updated_at or 0.0, reverse=True)
        return rows

    async def find_memories(
        self, query: str, *, user_id: str, limit: int, min_similarity: float | None = None
    ) -> list[MemoryHit]:
        return await self.search_memories(query, user_id=user_id, limit=limit)

    async def remember(self, user_id: str, text: str) -> tuple[str, bool]:
        text = " ".join(text.split())
        if not text:
            raise UsageError("a memory cannot be empty", hint="pass the text to remember")
        for row in await self.list_memories(user_id):
            if row.text.casefold() == text.casefold():
                return row.id, False
        ids = await self.add_memory([Message("user", text)], user_id=user_id, infer=False)
        if not ids:
            raise UsageError(
                "mem0 stored nothing", hint="check `cozy doctor` for the memory engine"
            )
        return ids[0], True

    async def _own(self, user_id: str, memory_id: str) -> Mem0Record:
        memory = await self.client()
        item = await self._run(memory.get, memory_id)
        if not isinstance(item, dict) or item.get("user_id") != user_id:
            raise NotFoundError(
                f"no memory '{memory_id}'", hint="list memories with `cozy memory list`"
            )
        return Mem0Record.of(item)

    async def edit_memory(self, user_id: str, memory_id: str, text: str) -> Mem0Record:
        row = await self._own(user_id, memory_id)
        text = " ".join(text.split())
        if not text:
            raise UsageError("a memory cannot be empty", hint="pass the new text")
        memory = await self.client()
        await self._run(memory.update, memory_id, data=text)
        return await self._own(user_id, row.id)

    async def forget(self, user_id: str, memory_id: str) -> Mem0Record:
        row = await self._own(user_id, memory_id)
        memory = await self.client()
        await self._run(memory.delete, memory_id)
        row.status = "deleted"
        return row

    async def restore(self, user_id: str, memory_id: str) -> Mem0Record:
        raise UsageError(
            "memory.mem0 deletes memories for good: there is nothing to restore",
            hint="add the fact again with `cozy memory add`",
        )

    async def history(self, user_id: str, memory_id: str) -> list[dict[str, Any]]:
        await self._own(user_id, memory_id)
        memory = await self.client()
        events = await self._run(memory.history, memory_id)
        return [history_row(e) for e in events or [] if isinstance(e, dict)]

    async def export(self, user_id: str) -> dict[str, Any]:
        items = []
        for row in await self.list_memories(user_id):
            item = row.to_dict()
            item["history"] = await self.history(user_id, row.id)
            items.append(item)
        return {"user_id": user_id, "memories": items, "count": len(items)}

    def background(self) -> Any:
        """Saved turns flow into mem0 through a durable job (see mem0_jobs.py)."""
        from cozy.engines.memory.mem0_jobs import Mem0Jobs

        return Mem0Jobs(self)


def _results(out: Any) -> list[dict[str, Any]]:
    if isinstance(out, dict):
        out = out.get("results", [])
    return [r for r in out or [] if isinstance(r, dict)]


def _hit(r: dict[str, Any]) -> MemoryHit:
    meta = dict(r.get("metadata") or {})
    sources = meta.pop("source_ids", None) or []
    for key in ("session_id", "personality_id", "role"):
        if r.get(key) is not None:
            meta.setdefault(key, r[key])
    return MemoryHit(
        id=str(r.get("id", "")),
        text=str(r.get("memory", "")),
        score=round(float(r.get("score") or 0.0), 6),
        source_message_ids=[str(s) for s in sources],
        created_at=r.get("created_at"),
        metadata=meta,
    )
