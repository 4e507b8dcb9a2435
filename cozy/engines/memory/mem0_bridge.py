"""The seam between cozy and the mem0 library (used only by `mem0_provider`).

- `import_mem0()` imports mem0 once with its telemetry off and its config dir under
  COZY_HOME (mem0 reads both from the environment at import time).
- `CozyLLM` / `CozyEmbedder` are mem0 LLM and embedder classes that call back into
  cozy's AI and embed engines: mem0 runs in a worker thread, the engines on the
  event loop; a context variable (copied into the thread by `asyncio.to_thread`)
  says which loop and which engines the current call belongs to.
- `SharedClients`: mem0's local Qdrant store allows one client per path, so the
  process keeps one `Memory` per path (reference counted) and turns another
  process's lock into a clear error.
- `translate()` maps vendor exceptions to cozy errors at the edge.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import contextvars
import os
import threading
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cozy.core.errors import CozyError, EngineError, MissingExtraError

INSTALL_EXTRA = "mem0"


@dataclass(slots=True)
class Host:
    """What a mem0 call running in a worker thread calls back into."""

    loop: asyncio.AbstractEventLoop
    chat: Callable[[list[dict[str, Any]], dict[str, Any] | None], Coroutine[Any, Any, str]]
    embed: Callable[[list[str]], Coroutine[Any, Any, list[list[float]]]]
    timeout: float


current_host: contextvars.ContextVar[Host | None] = contextvars.ContextVar(
    "cozy_mem0_host", default=None
)

_import_lock = threading.Lock()


def import_mem0(mem0_dir: Path) -> Any:
    """Import mem0 with telemetry off and its config dir under COZY_HOME."""
    with _import_lock:
        os.environ["MEM0_TELEMETRY"] = "False"
        os.environ["MEM0_DIR"] = str(mem0_dir)
        mem0_dir.mkdir(parents=True, exist_ok=True)
        try:
            import mem0
            import mem0.memory.main as main
            import mem0.memory.setup as setup
            import mem0.memory.telemetry as telemetry
        except ImportError as exc:
            raise MissingExtraError(INSTALL_EXTRA, "the mem0 memory provider") from exc
        # belt and braces: the module-level switches mem0 reads at call time
        telemetry.MEM0_TELEMETRY = False
        main.MEM0_TELEMETRY = False
        setup.mem0_dir = str(mem0_dir)
        return mem0


def _host() -> Host:
    host = current_host.get()
    if host is None:
        raise EngineError("mem0 called cozy's engines outside a cozy call")
    return host


def _call(host: Host, coro: Coroutine[Any, Any, Any]) -> Any:
    fut: concurrent.futures.Future[Any] = asyncio.run_coroutine_threadsafe(coro, host.loop)
    try:
        return fut.result(host.timeout)
    except TimeoutError as exc:
        fut.cancel()
        raise EngineError(f"mem0: a model call took over {host.timeout:g}s") from exc


def adapter_classes() -> tuple[type, type]:
    """mem0 base classes are only importable with the extra: build the adapters late."""
    from mem0.embeddings.base import EmbeddingBase
    from mem0.llms.base import LLMBase

    class CozyLLM(LLMBase):  # type: ignore[misc]
        def __init__(self, config: Any = None) -> None:
            super().__init__({"model": "cozy"})

        def generate_response(
            self,
            messages: list[dict[str, Any]],
            response_format: dict[str, Any] | None = None,
            tools: Any = None,
            tool_choice: str = "auto",
            **_: Any,
        ) -> str:
            host = _host()
            return str(_call(host, host.chat(messages, response_format)))

    class CozyEmbedder(EmbeddingBase):  # type: ignore[misc]
        def embed(self, text: Any, memory_action: Any = None) -> list[float]:
            host = _host()
            result: list[list[float]] = _call(host, host.embed([str(text)]))
            return result[0]

        def embed_batch(self, texts: list[str], memory_action: str = "add") -> list[list[float]]:
            host = _host()
            return list(_call(host, host.embed([str(t) for t in texts])))

    return CozyLLM, CozyEmbedder


class _Locked:
    """Serialises calls into an object that is not thread-safe (the local Qdrant client)."""

    def __init__(self, target: Any, lock: threading.RLock) -> None:
        self._target = target
        self._lock = lock

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._target, name)
        if not callable(value):
            return value

        def locked(*args: Any, **kwargs: Any) -> Any:
            with self._lock:
                return value(*args, **kwargs)

        return locked


@dataclass(slots=True)
class _Entry:
    memory: Any
    refs: int


class SharedClients:
    """One mem0 `Memory` per store path in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._clients: dict[str, _Entry] = {}

    def acquire(self, key: str, build: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._clients.get(key)
            if entry is None:
                entry = _Entry(build(), 0)
                self._clients[key] = entry
            entry.refs += 1
            return entry.memory

    def release(self, key: str) -> None:
        with self._lock:
            entry = self._clients.get(key)
            if entry is None:
                return
            entry.refs -= 1
            if entry.refs > 0:
                return
            del self._clients[key]
        # mem0's close() leaves the vector store's client open, and a local Qdrant keeps
        # its directory locked until that client closes: a second runtime in this
        # process (one `cozy memory` command after another in a test) could not open it
        store_client = getattr(getattr(entry.memory, "vector_store", None), "client", None)
        for close in (getattr(entry.memory, "close", None), getattr(store_client, "close", None)):
            if close is not None:
                with contextlib.suppress(Exception):  # closing must never mask anything
                    close()


shared_clients = SharedClients()


def build_memory(
    mem0_dir: Path,
    *,
    dims: int,
    collection: str,
    vector_store: dict[str, Any] | None,
) -> Any:
    """A mem0 `Memory` wired to cozy's engines, with its files under `mem0_dir`."""
    import_mem0(mem0_dir)
    from mem0 import Memory
    from mem0.configs.base import MemoryConfig

    store = vector_store or {
        "provider": "qdrant",
        "config": {"path": str(mem0_dir / "qdrant"), "on_disk": True},
    }
    store = {**store, "config": {**dict(store.get("config") or {})}}
    store["config"].setdefault("collection_name", collection)
    store["config"].setdefault("embedding_model_dims", dims)
    config = MemoryConfig(
        vector_store=store,
        # placeholders: mem0 validates them, then we swap in the cozy adapters
        llm={"provider": "openai", "config": {"api_key": "unused-by-cozy", "model": "cozy"}},
        embedder={
            "provider": "openai",
            "config": {"api_key": "unused-by-cozy", "embedding_dims": dims},
        },
        history_db_path=str(mem0_dir / "history.db"),
    )
    memory = Memory(config)
    llm_cls, embed_cls = adapter_classes()
    memory.llm = llm_cls()
    memory.embedding_model = embed_cls()
    memory.vector_store = _Locked(memory.vector_store, threading.RLock())
    return memory


_LOCK_MARKERS = ("already accessed by another instance", "resource temporarily unavailable")


def translate(exc: BaseException, *, path: Path) -> CozyError:
    """A vendor exception as a cozy error with the fix (cozy errors pass through)."""
    seen: BaseException | None = exc
    while seen is not None:  # mem0 wraps our own errors: unwrap to the cozy one
        if isinstance(seen, CozyError):
            return seen
        seen = seen.__cause__ or seen.__context__
    text = str(exc)
    if any(m in text.lower() for m in _LOCK_MARKERS):
        return EngineError(
            f"mem0's store {path} is in use by another cozy process",
            hint="close the other cozy (chat/serve) first, or point `memory.vector_store` "
            "at a Qdrant or pgvector server that many processes can share",
        )
    name = type(exc).__name__
    if name == "ValidationError" or isinstance(exc, ValueError):
        return EngineError(f"mem0 rejected the request: {text}", hint="check `memory:` options")
    return EngineError(f"mem0 failed: {name}: {text}", hint="see `cozy doctor`")
