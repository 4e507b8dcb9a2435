"""The composition root: builds store, engines and the orchestrator from settings.

Faces call `Runtime.open(settings)` and then talk to `runtime.orchestrator`,
`runtime.models` (models.py) and the few helpers here; they never build engines or
touch SQL themselves.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from cozy.core.errors import ConfigError, EngineError, UsageError
from cozy.core.personalities import PersonalityCatalog
from cozy.core.summaries import JOB_KIND as SUMMARY_JOB
from cozy.core.summaries import Summarizer
from cozy.core.toolpolicy import face_policies
from cozy.core.types import ToolSpec
from cozy.engines.ai.router import ModelRouterImpl
from cozy.engines.base import BaseEngine, EmbedEngine, EngineContext, KnowledgeEngine, ToolsEngine
from cozy.engines.capabilities import (
    HasBackgroundJobs,
    IngestsPaths,
    ProvidesBuiltinTools,
    SavedTurn,
    TurnHook,
)
from cozy.engines.config import EnginesConfig, load_engines_config
from cozy.engines.registry import EngineFactory
from cozy.runtime.models import Models, provider_keys
from cozy.settings import Settings
from cozy.storage.branches import Branches
from cozy.storage.cache import DiskL2Cache, L2Cache
from cozy.storage.job_queue import JobQueue
from cozy.storage.redis_cache import RedisLink
from cozy.storage.store import Store
from cozy.storage.summaries import SummaryStore
from cozy.storage.worker import DrainStats, JobWorker

if TYPE_CHECKING:
    from cozy.core.orchestrator import ChatOrchestrator
    from cozy.core.toolloop import ToolRunner
    from cozy.core.toolpolicy import Rule
    from cozy.storage.fragments import Fragments


class Runtime:
    def __init__(
        self,
        settings: Settings,
        config: EnginesConfig,
        store: Store,
        factory: EngineFactory | None = None,
    ) -> None:
        self.settings = settings
        self.config = config
        self.store = store
        self.factory = factory or EngineFactory()
        self.personalities = PersonalityCatalog(
            [settings.packaged_profiles_dir, settings.user_profiles_dir]
        )
        self.router = ModelRouterImpl(config, self.factory, provider_keys(settings))
        self.models = Models(self.router, self.personalities, settings)  # pickers, server
        self.engines: dict[str, BaseEngine] = {}
        self._ready: set[str] = set()  # kinds whose engine finished initialize()
        self._engine_locks: dict[str, asyncio.Lock] = {}
        # the chat layer (orchestrator, context, tool loop) is built on the first turn:
        # one-shot commands such as `cozy knowledge add` never import it (~60 ms start-up)
        self._orchestrator: ChatOrchestrator | None = None
        self._context_engines: dict[str, Any] = {}
        self._context_timeouts: dict[str, float] = {}
        self._tools_engine: ToolsEngine | None = None
        self._cache: L2Cache | None = None
        self._ctx: EngineContext | None = None
        self._warm_embedder = True
        self.redis: RedisLink | None = None  # server mode (COZY_REDIS_URL): cache, limits
        self.jobs = JobQueue(store)
        self.branches = Branches(store)  # regenerate / edit-and-resend / undo (cozy chat)
        self.worker = JobWorker(self.jobs)
        # the engines' background jobs join in _build; the turn writer tells them all
        self._turn_hooks: list[TurnHook] = [_WakeWorker(self.worker)]
        self.summarizer = Summarizer(
            SummaryStore(store),
            self.jobs,
            self.router,
            keep_recent=config.context.recent_messages,
        )
        self.worker.register(SUMMARY_JOB, self.summarizer.handle)

    @property
    def fragments(self) -> Fragments:
        """The `-f` fragments kept once by hash (`cozy fragments`)."""
        from cozy.storage.fragments import Fragments

        return Fragments(self.store)

    @property
    def cache(self) -> L2Cache:
        """The L2 cache (diskcache under the data dir), opened on first use."""
        if self._cache is None:
            if self.redis is not None:
                from cozy.storage.redis_cache import RedisL2Cache

                self._cache = RedisL2Cache(self.redis)
            else:
                self._cache = DiskL2Cache(self.settings.cache_dir)
        return self._cache

    @classmethod
    def load_config(cls, settings: Settings) -> EnginesConfig:
        return load_engines_config(settings.engines_files)

    @classmethod
    async def open(cls, settings: Settings, *, engines: bool = True) -> Runtime:
        config = cls.load_config(settings)
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        store = await Store.open(
            settings.db_url,
            busy_timeout_ms=settings.db_busy_timeout_ms,
            pool_size=settings.db_pool_size,
            max_overflow=settings.db_max_overflow,
            connect_timeout=settings.db_connect_timeout,
            statement_timeout=settings.db_statement_timeout,
        )
        rt = cls(settings, config, store)
        rt._warm_embedder = engines  # one-shot commands open engines lazily, cold
        try:
            if settings.redis_url:
                rt.redis = RedisLink(settings.redis_url, pool_size=settings.redis_pool_size)
                await rt.redis.ping()  # unreachable at start: a clear error naming the URL
            await rt._build(engines)
        except BaseException:
            await rt.close()
            raise
        return rt

    @property
    def engine_context(self) -> EngineContext:
        """What every engine gets from the house; built once, on the first engine."""
        if self._ctx is None:
            self._ctx = EngineContext(
                store=self.store,
                cache=self.cache,
                router=self.router,
                settings=self.settings,
                config=self.config,
                redis=self.redis,
                load_embedder=self._load_embedder,
                collections_of=self._collections_of,
                offer_tool=self._offer_tool,
                wake_worker=self._wake_worker,
                warm_embedder=self._warm_embedder,
            )
        return self._ctx

    async def _load_embedder(self) -> EmbedEngine | None:
        engine = await self.engine("embed")
        return engine if isinstance(engine, EmbedEngine) else None

    def _collections_of(self, personality_id: str) -> Sequence[str]:
        return list(self.personalities.get(personality_id).context.collections)

    def _offer_tool(self, spec: ToolSpec, fn: Callable[..., Any]) -> None:
        tools = self.engines.get("tools")
        if isinstance(tools, ProvidesBuiltinTools):
            tools.register_builtin(spec, fn)

    def _wake_worker(self) -> None:
        if self.worker.running:
            self.worker.notify()

    def _create(self, kind: str) -> BaseEngine | None:
        section = self.config.section(kind)
        if not section.active:
            return None
        cls = self.factory.registry.get(kind, section.provider)
        self.config.validate_options(cls.Options, section.options, (kind,))
        engine = self.factory.create(kind, section.provider, section.options, self.engine_context)
        self.engines[kind] = engine
        return engine

    async def _build(self, with_engines: bool) -> None:
        context_engines: dict[str, Any] = {}
        timeouts: dict[str, float] = {}
        tools: ToolsEngine | None = None
        if with_engines:
            for kind in ("knowledge", "profile", "memory"):
                engine = self._create(kind)
                if engine is not None:
                    await engine.initialize()
                    self._ready.add(kind)
                    context_engines[kind] = engine
                    self._wire_background(engine)
                    timeout = self.config.section(kind).timeout
                    if timeout:
                        timeouts[kind] = timeout
            created = self._create("tools")
            if isinstance(created, ToolsEngine):
                await created.initialize()
                self._ready.add("tools")
                tools = created
                self._register_engine_tools(created, context_engines)
        self._context_engines, self._context_timeouts = context_engines, timeouts
        self._tools_engine = tools
        self._check_tool_policies()  # a bad tools.server_policy fails at open, not mid-turn

    @property
    def orchestrator(self) -> ChatOrchestrator:
        """The chat layer over the engines `open()` built; made on first use."""
        if self._orchestrator is None:
            self._orchestrator = self._make_orchestrator()
        return self._orchestrator

    def _make_orchestrator(self) -> ChatOrchestrator:
        # imported here: the orchestrator pulls in the whole turn pipeline, which only
        # turns need (chat, run, server, TUI), not the one-shot engine commands
        from cozy.core.context import ContextService
        from cozy.core.orchestrator import ChatOrchestrator
        from cozy.core.windows import ContextWindows, TokenAccounting

        ctx_cfg = self.config.context
        return ChatOrchestrator(
            store=self.store,
            personalities=self.personalities,
            router=self.router,
            context=ContextService(timeouts=self._context_timeouts, **self._context_engines),
            tools=self._tool_runner(self._tools_engine),
            default_personality=self.settings.personality,
            recent_messages=ctx_cfg.recent_messages,
            token_budget=ctx_cfg.token_budget,
            reserve_answer_tokens=ctx_cfg.reserve_answer_tokens,
            turn_hooks=self._turn_hooks,
            windows=ContextWindows(self.config.ai.context_windows, cache=self.cache),
            accounting=TokenAccounting(cache=self.cache),
            summarizer=self.summarizer,
        )

    def _wire_background(self, engine: BaseEngine) -> None:
        """An engine with background work gives a turn hook and job handlers."""
        if not isinstance(engine, HasBackgroundJobs):
            return
        bg = engine.background()
        self._turn_hooks.append(bg)
        for kind, handler in bg.handlers().items():
            self.worker.register(kind, handler)

    def start_worker(self) -> None:
        """Run queued jobs in this process (TUI, server) until `close()`."""
        self.worker.start()

    async def knowledge(self) -> KnowledgeEngine:
        """The knowledge engine, or an EngineError saying how to turn it on (server, TUI)."""
        engine = await self.engine("knowledge")
        if not isinstance(engine, KnowledgeEngine):
            raise EngineError(
                "the knowledge engine is off",
                hint="enable it with `knowledge: {provider: local}` in engines.yaml",
            )
        return engine

    async def queue_ingest(
        self, paths: list[str], *, user_id: str, collection: str, embed: bool = True
    ) -> str:
        """Queue a durable knowledge ingest of `paths` (read on this machine) and run it
        in this process's worker; returns the job id (TUI `/knowledge add`, server POST)."""
        engine = await self.knowledge()
        if not isinstance(engine, IngestsPaths):
            raise UsageError(
                "this knowledge provider cannot ingest paths in the background",
                hint="send the documents' text instead, or use `knowledge: {provider: local}`",
            )
        job_id = await engine.queue_ingest(
            paths, user_id=user_id, collection=collection, embed=embed
        )
        self.start_worker()
        return job_id

    async def drain_jobs(
        self, *, include_deferred: bool = True, kinds: Sequence[str] | None = None
    ) -> DrainStats:
        """Run every runnable job (of these `kinds`) now (`cozy jobs run`)."""
        return await self.worker.drain(include_deferred=include_deferred, kinds=kinds)

    def _tool_runner(self, engine: ToolsEngine | None) -> ToolRunner:
        """The tool loop with remembered grants, face policies and the round cap."""
        from cozy.core.toolloop import ToolRunner
        from cozy.storage.tool_grants import ToolGrants

        cfg = self.config.tools
        return ToolRunner(
            engine,
            audit=self.store,
            grants=ToolGrants(self.store),
            policies=self._check_tool_policies(),
            max_rounds=cfg.max_rounds,
        )

    def _check_tool_policies(self) -> dict[str, dict[str, Rule]]:
        try:
            return face_policies(self.config.tools.server_policy)
        except ValueError as exc:
            raise ConfigError(str(exc), hint="fix tools.server_policy in engines.yaml") from exc

    def _register_engine_tools(self, tools: ToolsEngine, engines: dict[str, Any]) -> None:
        """memory.* / knowledge.* built-in tools over the configured engines."""
        if not isinstance(tools, ProvidesBuiltinTools):
            return
        from cozy.engines.tools.builtin import declared_builtins
        from cozy.engines.tools.engine_tools import engine_tools

        declared = declared_builtins()  # a provider may have declared its own version
        for spec, fn in engine_tools(
            memory=engines.get("memory"), knowledge=engines.get("knowledge")
        ):
            if spec.name not in declared:
                tools.register_builtin(spec, fn)

    async def engine(self, kind: str) -> BaseEngine | None:
        """An engine by kind, created and initialised once on first use: concurrent first
        requests wait for the one initialisation instead of seeing a half-built engine."""
        if kind in self._ready:
            return self.engines[kind]
        lock = self._engine_locks.setdefault(kind, asyncio.Lock())
        async with lock:
            if kind not in self.engines and self._create(kind) is None:
                return None
            if kind not in self._ready:
                await self.engines[kind].initialize()
                self._ready.add(kind)
        return self.engines[kind]

    async def close(self, grace: float = 0.0) -> None:
        """Close everything; turns still running get `grace` s, then are interrupted and
        their partial answers saved before the store closes."""
        orchestrator = self._orchestrator  # never built: no turn ran, none to settle
        if orchestrator is not None:
            stopped = await orchestrator.settle(grace)
            if stopped:
                logging.getLogger("cozy.runtime").warning(
                    "stopping: %d answer(s) in progress saved as interrupted", stopped
                )
        await self.worker.stop()
        await self.router.close()
        for engine in list(self.engines.values()):
            with contextlib.suppress(Exception):  # closing must not mask the original error
                await engine.close()
        self.engines.clear()
        self._ready.clear()
        if self._cache is not None:
            self._cache.close()
        if self.redis is not None:
            await self.redis.close()
        await self.store.close()


class _WakeWorker(TurnHook):
    """After a turn: it has queued jobs (in its saving transaction); wake the worker."""

    def __init__(self, worker: JobWorker) -> None:
        self.worker = worker
        self.seen = -1

    async def committed(self, saved: SavedTurn) -> None:
        from cozy.storage.jobs import queued_count

        queued = queued_count()  # no job queued since the last wake-up: nothing to claim
        if self.worker.running and queued != self.seen:
            self.seen = queued
            self.worker.notify()
