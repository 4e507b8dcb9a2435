"""`knowledge.cognee`: knowledge kept by cognee (extra `cognee`, imported only here).

`add_knowledge` runs cognee's add + cognify (chunks, embeddings, summaries, graph)
on a dataset per cozy user and collection (`<user>__<collection>`); `search_knowledge`
runs cognee's search (default `CHUNKS`: vector search over the chunks, no model
call on the hot path). cognee's LLM and embeddings are cozy's configured AI engine
and `embed:` engine (OpenAI-compatible or Ollama endpoints); its data, system and
log roots live under `<COZY_HOME>/cognee`; telemetry, model cost map and tokenizer
downloads are off (see cognee_setup.py).

cognee needs `openai<3` and older pins of shared packages: `./install.sh --dev`
builds it into its own venv (`.venv-cognee`); see docs/providers.md.

Options (engines.yaml `knowledge:`): `model` (AI model for cognify, default the AI
default), `search_type` (default CHUNKS), `cognify` (default true), `path`,
`llm` / `embedding` (cognee's own config dicts, overriding the derived ones).
"""

from __future__ import annotations

import asyncio
import hashlib
import re
from collections.abc import Sequence
from typing import Any, ClassVar

from cozy.core.errors import ConfigError, CozyError, EngineError, MissingExtraError
from cozy.core.types import KnowledgeHit
from cozy.engines.base import EngineContext, EngineOptions, Health, KnowledgeEngine
from cozy.engines.opening import Opening, library_home

_NAME_RE = re.compile(r"[^A-Za-z0-9_.-]+")


def dataset_name(user_id: str, collection: str) -> str:
    return f"{_NAME_RE.sub('_', user_id)}__{_NAME_RE.sub('_', collection or 'default')}"


class CogneeOptions(EngineOptions):
    model: str | None = None
    search_type: str = "CHUNKS"
    cognify: bool = True
    path: str | None = None
    llm: dict[str, Any] | None = None  # cognee's own LLM config (else cozy's ai engine)
    embedding: dict[str, Any] | None = None  # cognee's own embedding config


class CogneeKnowledge(KnowledgeEngine):
    Options = CogneeOptions
    provider_name: ClassVar[str] = "cognee"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = self.opts = CogneeOptions.of(self.options, "knowledge")
        self.model: str | None = o.model
        self.search_type = o.search_type.upper()
        self.run_cognify = o.cognify
        self.root = library_home(self.ctx, o.path, "cognee", "knowledge.cognee")
        self._cognee: Any = None
        self._opening = Opening(self._open)
        self._write_lock = asyncio.Lock()

    # --- lifecycle ------------------------------------------------------------------
    async def initialize(self) -> None:
        self._opening.start()  # cognee takes many seconds to import (engines/opening.py)

    def _configs(self) -> tuple[dict[str, Any], dict[str, Any]]:
        from cozy.engines.knowledge import cognee_setup as setup

        llm = self.opts.llm
        embedding = self.opts.embedding
        if llm is None:
            router, config = self.ctx.router, self.ctx.config
            if router is None or config is None:
                raise ConfigError("knowledge.cognee needs the runtime or a `llm:` option")
            provider, model = router.split(self.model)
            llm = setup.llm_config(provider, model, config)
        if embedding is None:
            if self.ctx.config is None:
                raise ConfigError("knowledge.cognee needs the runtime or an `embedding:` option")
            section = self.ctx.config.section("embed")
            if not section.active:
                raise ConfigError(
                    "knowledge.cognee needs an embedder",
                    hint="add `embed: {provider: ollama}` (or openai) to engines.yaml",
                )
            embedding = setup.embedding_config(self.ctx.config)
        return dict(llm), dict(embedding)

    async def _open(self) -> Any:
        from cozy.engines.knowledge import cognee_setup as setup

        llm, embedding = self._configs()
        cognee = await asyncio.to_thread(setup.configure, self.root, llm, embedding)
        try:
            from cognee.modules.engine.operations.setup import setup as create_databases

            await create_databases()  # relational tables and cognee's own migrations
        except Exception as exc:
            raise translate(exc) from exc
        self._cognee = cognee
        return cognee

    async def client(self) -> Any:
        if self._cognee is not None:
            return self._cognee
        return await self._opening.get()

    async def close(self) -> None:
        await self._opening.cancel()
        self._cognee = None

    async def health_check(self) -> Health:
        try:
            cognee = await asyncio.wait_for(self.client(), 120)
            datasets = await cognee.datasets.list_datasets()
        except Exception as exc:
            err = translate(exc)  # a cozy error as it is
            return Health(ok=False, detail=err.message, fix=err.hint or "")
        return Health(ok=True, detail=f"cognee at {self.root} ({len(datasets)} datasets)")

    # --- the knowledge interface ------------------------------------------------------
    async def add_knowledge(
        self,
        text: str,
        *,
        user_id: str,
        collection: str = "default",
        source: str = "",
        metadata: dict[str, Any] | None = None,
    ) -> str:
        if not text.strip():
            raise ConfigError("nothing to add: the text is empty")
        cognee = await self.client()
        name = dataset_name(user_id, collection)
        async with self._write_lock:  # cognee's pipelines are not safe to interleave
            try:
                await cognee.add(text, dataset_name=name)
                if self.run_cognify:
                    await cognee.cognify(datasets=[name])
            except CozyError:
                raise
            except Exception as exc:
                raise translate(exc) from exc
        digest = hashlib.sha1(text.encode()).hexdigest()[:16]
        return f"cognee:{name}:{digest}"

    async def _user_datasets(self, cognee: Any, user_id: str) -> dict[str, Any]:
        prefix = dataset_name(user_id, "")[: -len("default")]
        return {
            str(d.name): d.id
            for d in await cognee.datasets.list_datasets()
            if d.name.startswith(prefix)
        }

    async def _document_ids(self, cognee: Any, dataset_ids: list[Any]) -> set[str]:
        """The documents of these datasets: search results are filtered to them, since
        cognee's chunk index is shared across datasets in single-user mode."""
        out: set[str] = set()
        for did in dataset_ids:
            out.update(str(d.id) for d in await cognee.datasets.list_data(did))
        return out

    async def search_knowledge(
        self,
        query: str,
        *,
        user_id: str,
        collections: Sequence[str] | None = None,
        limit: int = 5,
    ) -> list[KnowledgeHit]:
        if not query.strip():
            return []
        cognee = await self.client()
        try:
            owned = await self._user_datasets(cognee, user_id)
            names = [dataset_name(user_id, c) for c in collections] if collections else owned
            names = [n for n in names if n in owned]
            if not names:
                return []
            allowed = await self._document_ids(cognee, [owned[n] for n in names])
            from cognee import SearchType

            found = await cognee.search(
                query,
                query_type=getattr(SearchType, self.search_type),
                datasets=names,
                top_k=max(limit * 4, 20),
            )
        except CozyError:
            raise
        except Exception as exc:
            raise translate(exc) from exc
        hits = [_hit(r) for r in _flatten(found)]
        hits = [h for h in hits if str(h.metadata.get("document_id")) in allowed]
        hits.sort(key=lambda h: -h.score)
        return hits[:limit]


def _flatten(found: Any) -> list[Any]:
    """cognee answers a flat list, or one `{search_result: [...]}` per dataset."""
    out: list[Any] = []
    for item in found or []:
        if isinstance(item, dict) and "search_result" in item:
            out.extend(item.get("search_result") or [])
        else:
            out.append(item)
    return out


def _hit(r: Any) -> KnowledgeHit:
    if not isinstance(r, dict):
        return KnowledgeHit(id="", text=str(r), score=0.0, citation="cognee")
    doc = str(r.get("document_name") or "cognee")
    chunk = r.get("chunk_index")
    return KnowledgeHit(
        id=str(r.get("id", "")),
        text=str(r.get("text", "")),
        score=round(float(r.get("score") or 0.0), 6),
        citation=f"{doc}#chunk{chunk}" if chunk is not None else doc,
        metadata={"document_id": r.get("document_id"), "provider": "cognee"},
    )


def translate(exc: BaseException) -> CozyError:
    if isinstance(exc, CozyError):
        return exc
    if isinstance(exc, ImportError):
        return MissingExtraError("cognee", "the cognee knowledge provider")
    name, text = type(exc).__name__, str(exc)
    low = text.lower()
    if "connection" in low or "unreachable" in low or "connect" in name.lower():
        return EngineError(
            f"cognee could not reach its model or embedding endpoint ({name})",
            hint="check `cozy doctor`: the AI engine and `embed:` must be reachable",
        )
    return EngineError(f"cognee failed: {name}: {text[:300]}", hint="see `cozy doctor`")
