"""One llama.cpp model per process, driven by one worker thread, requests queued by priority.

llama.cpp's model and context are not thread-safe, and a second copy of a model would
double its memory: so every generation in the process (user turns, background jobs, the
server's requests) runs on one thread, in a bounded priority queue (user turns before
background jobs). A full queue is refused at once (`ModelBusy`, HTTP 503 + Retry-After)
rather than piling up. The model is loaded on the first request and kept warm; asking
for another file unloads the previous one first.

Every item a job produces reaches the caller's event loop through
`call_soon_threadsafe`; a job's `stop` flag is checked between tokens (Esc, Ctrl-C,
a client disconnect stop generation within one token).

One module past 400 lines on purpose: the thread, its queue and the hand-off to the
event loop share one invariant (one thread owns the model) that splitting would scatter.
"""

from __future__ import annotations

import asyncio
import collections
import ctypes
import itertools
import logging
import os
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cozy.core.errors import CozyError, EngineError, ModelBusy, ModelFileError
from cozy.engines.ai.gguf import GGUFInfo, read_info
from cozy.engines.ai.local_models import ModelFile, verify

log = logging.getLogger("cozy.ai.local")

INTERACTIVE, BACKGROUND = 0, 1
LLAMA_INSTALL_HINT = (
    "run `./install.sh` again (it builds llama-cpp-python; its output says why a build "
    "failed), or use another provider: `ollama serve` (Ollama) or set OPENAI_API_KEY"
)
_END = object()


@dataclass(slots=True)
class LoadOptions:
    n_ctx: int | None = None  # None: the GGUF's context length, capped at max_ctx
    max_ctx: int = 8192
    n_threads: int | None = None
    n_batch: int = 512
    memory_check: bool = True


@dataclass(slots=True)
class Loaded:
    """A model in memory, with what the generation code needs beside it."""

    llm: Any  # llama_cpp.Llama
    file: ModelFile
    info: GGUFInfo
    n_ctx: int
    n_threads: int
    load_seconds: float
    formatter: Any = None  # llama_cpp.llama_chat_format.Jinja2ChatFormatter
    opts: LoadOptions | None = None


@dataclass
class Job:
    """One request on the worker: what it yields arrives in `items()`."""

    run: Callable[[Job], None]
    priority: int
    loop: asyncio.AbstractEventLoop
    stop: threading.Event = field(default_factory=threading.Event)
    tokens_after_stop: int = 0  # tokens decoded after `stop` was set (tests, bench)
    made: int = 0  # tokens generated
    started: threading.Event = field(default_factory=threading.Event)
    finished: threading.Event = field(default_factory=threading.Event)
    _queue: asyncio.Queue[Any] = field(default_factory=asyncio.Queue)

    def emit(self, item: Any) -> None:
        """Hand an item to the caller's loop (from the worker thread)."""
        try:
            self.loop.call_soon_threadsafe(self._queue.put_nowait, item)
        except RuntimeError:  # the caller's loop is closed: nobody is listening
            self.stop.set()

    def stopped(self) -> bool:
        return self.stop.is_set()

    async def items(self, first: float, gap: float) -> AsyncIterator[Any]:
        """Items until the job ends: the first within `first` seconds (the queue, loading
        the model, the prompt), each next within `gap` seconds, else an error."""
        wait = first
        while True:
            try:
                item = await asyncio.wait_for(self._queue.get(), wait)
            except TimeoutError:
                self.stop.set()
                raise EngineError(
                    f"the local model produced nothing for {wait:g}s",
                    hint="raise `ai.providers.local.timeout` / `idle_timeout` in engines.yaml, "
                    "use a smaller "
                    "model, or check the machine's load",
                ) from None
            wait = gap
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item


@dataclass(eq=False)
class Hold:
    """Places held in the worker's queue for one request before its generations are
    submitted (see `Worker.admit`)."""

    worker: Worker
    left: int

    def release(self) -> None:
        """Give back the places no generation used (idempotent)."""
        with self.worker._lock:
            self.worker._pending -= self.left
            self.left = 0


# the places the current request holds: a contextvar, so the generations of this task and
# of the tasks it starts afterwards (the server's per-choice pumps) find them
_held: ContextVar[Hold | None] = ContextVar("cozy_llama_held", default=None)


class Worker:
    """The one thread that touches llama.cpp objects, fed by a bounded priority queue."""

    def __init__(self, max_queue: int = 16) -> None:
        self.max_queue = max_queue
        self._queue: queue.PriorityQueue[tuple[int, int, Job]] = queue.PriorityQueue()
        self._seq = itertools.count()
        self._pending = 0
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self.loaded: Loaded | None = None
        self.last_job: Job | None = None
        self.busy_seconds = 5  # Retry-After, refreshed from recent job durations

    @property
    def pending(self) -> int:
        return self._pending

    def _busy(self) -> ModelBusy:
        return ModelBusy(
            f"the local model has {self._pending} requests waiting (the queue holds "
            f"{self.max_queue})",
            hint="retry shortly, or raise `ai.providers.local.max_queue`",
            retry_after=self.busy_seconds,
        )

    def admit(self, n: int = 1) -> Hold:
        """Hold `n` places in the queue now, or raise `ModelBusy`: the server does this
        before it answers 200 to a streaming request (after that, a full queue could only
        be an error inside the stream). The next `n` generations this task (and the tasks
        it starts afterwards) submits take the places; `release()` returns the rest."""
        with self._lock:
            if self._pending + n > self.max_queue:
                raise self._busy()
            self._pending += n
        hold = Hold(self, n)
        _held.set(hold)
        return hold

    def submit(self, run: Callable[[Job], None], priority: int = INTERACTIVE) -> Job:
        loop = asyncio.get_running_loop()
        job = Job(run, priority, loop)
        held = _held.get()
        with self._lock:
            if held is not None and held.worker is self and held.left > 0:
                held.left -= 1  # its place is counted already
            elif self._pending >= self.max_queue:
                raise self._busy()
            else:
                self._pending += 1
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._serve, name="cozy-llama", daemon=True)
                self._thread.start()
        self.last_job = job
        self._queue.put((priority, next(self._seq), job))
        return job

    def _serve(self) -> None:
        while True:
            _, _, job = self._queue.get()
            started = time.monotonic()
            try:
                if not job.stopped():  # cancelled while it waited: skip it
                    job.started.set()
                    job.run(job)
            except BaseException as exc:  # handed to the caller, who raises it
                job.emit(exc if isinstance(exc, CozyError) else _unexpected(exc))
            finally:
                with self._lock:
                    self._pending -= 1
                took = time.monotonic() - started
                self.busy_seconds = max(1, min(60, round(took + 0.5)))
                job.finished.set()
                job.emit(_END)

    # -- the model (called on the worker thread only) ---------------------------
    def model(self, file: ModelFile, opts: LoadOptions) -> Loaded:
        """The loaded model for `file`, loading it (and dropping another) if needed."""
        current = self.loaded
        if current is not None and current.file.path == file.path and current.opts == opts:
            return current
        if current is not None:
            self.loaded = None
            current.llm.close()
        self.loaded = load(file, opts)
        return self.loaded


def _unexpected(exc: BaseException) -> CozyError:
    return EngineError(f"the local model failed: {type(exc).__name__}: {exc}")


_worker: Worker | None = None
_worker_lock = threading.Lock()


def worker(max_queue: int | None = None) -> Worker:
    """The process's worker (created on first use)."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = Worker(max_queue or 16)
        elif max_queue:
            _worker.max_queue = max_queue
        return _worker


# -- loading -------------------------------------------------------------------------
_log_lines: collections.deque[str] = collections.deque(maxlen=40)
_log_callback: Any = None
_last_level = 0


def import_llama() -> Any:
    """llama_cpp, with its log routed into cozy (kept for error messages, never printed)."""
    global _log_callback
    try:
        import llama_cpp
    except ImportError as exc:
        raise EngineError(
            f"the embedded model needs llama-cpp-python, which is not installed ({exc})",
            hint=LLAMA_INSTALL_HINT,
        ) from exc
    if _log_callback is None:

        @llama_cpp.llama_log_callback  # type: ignore[untyped-decorator]
        def _on_log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
            # ggml's levels: 1 debug, 2 info, 3 warn, 4 error, 5 continues the last line
            global _last_level
            level = _last_level if level == 5 else level
            _last_level = level
            if level >= 3:
                _log_lines.append(text.decode("utf-8", errors="replace"))

        _log_callback = _on_log
        llama_cpp.llama_log_set(_log_callback, ctypes.c_void_p(0))
    return llama_cpp


def available_memory() -> int | None:
    """Bytes this process may still use: MemAvailable, lowered by a cgroup v2 limit."""
    avail: int | None = None
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    avail = int(line.split()[1]) * 1024
                    break
    except (OSError, ValueError):
        pass
    try:
        with open("/sys/fs/cgroup/memory.max", encoding="ascii") as fh:
            limit = fh.read().strip()
        if limit != "max":
            with open("/sys/fs/cgroup/memory.current", encoding="ascii") as fh:
                room = int(limit) - int(fh.read().strip())
            avail = room if avail is None else min(avail, room)
    except (OSError, ValueError):
        pass
    return avail


def needed_memory(info: GGUFInfo, n_ctx: int) -> int:
    """Weights + f16 KV cache + ~10% and 64 MiB for llama.cpp's compute buffers."""
    base = info.size + info.kv_cache_bytes(n_ctx)
    return int(base * 1.1) + (64 << 20)


def context_size(info: GGUFInfo, opts: LoadOptions) -> int:
    trained = info.context_length or 4096
    if opts.n_ctx:
        return min(opts.n_ctx, trained)
    return min(trained, opts.max_ctx)


def thread_count(opts: LoadOptions) -> int:
    """One thread per core this process may use, less one (at most 8) for the event loop,
    the token loop and the rest of the machine: llama.cpp's threads wait for each other
    after every step, so one descheduled thread stalls them all. On a 2-core box at
    load 10, 1 thread made 11 tokens/s and 2 threads 1 token/s."""
    if opts.n_threads:
        return opts.n_threads
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores - 1, 8))


def _gib(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB"


def check(file: ModelFile, opts: LoadOptions) -> tuple[GGUFInfo, int]:
    """Verify the file before anything is loaded: hash, header, size, memory."""
    verify(file)
    info = read_info(file.path)
    n_ctx = context_size(info, opts)
    if opts.memory_check:
        need = needed_memory(info, n_ctx)
        avail = available_memory()
        if avail is not None and need > avail:
            raise ModelFileError(
                f"{file.path.name} needs about {_gib(need)} of memory to run with a "
                f"{n_ctx:,}-token window; {_gib(avail)} is available",
                hint="use a smaller model or quantisation (e.g. a Q4_K_M of a 1-3B model), "
                "lower `ai.providers.local.n_ctx`, or free memory",
            )
    return info, n_ctx


def load(file: ModelFile, opts: LoadOptions) -> Loaded:
    info, n_ctx = check(file, opts)
    llama_cpp = import_llama()
    threads = thread_count(opts)
    _log_lines.clear()
    started = time.perf_counter()
    try:
        llm = llama_cpp.Llama(
            model_path=str(file.path),
            n_ctx=n_ctx,
            n_batch=min(opts.n_batch, n_ctx),
            n_threads=threads,
            n_threads_batch=threads,
            verbose=False,
        )
    except (ValueError, RuntimeError, OSError) as exc:
        raise _load_error(file, info, exc) from exc
    took = time.perf_counter() - started
    log.info(
        "local model loaded",
        extra={"model": str(file.path), "seconds": round(took, 3), "n_ctx": n_ctx},
    )
    formatter = _formatter(llama_cpp, llm, info)
    return Loaded(llm, file, info, n_ctx, threads, took, formatter, opts)


def _load_error(file: ModelFile, info: GGUFInfo, exc: BaseException) -> ModelFileError:
    said = " ".join(line.strip() for line in _log_lines if line.strip())
    if "unknown model architecture" in said:
        return ModelFileError(
            f"{file.path.name} is a '{info.architecture}' model, an architecture this build "
            "of llama.cpp does not support",
            hint="update llama-cpp-python (`./install.sh` rebuilds the newest), or run the "
            "model with Ollama",
        )
    detail = said[-300:] or str(exc)
    return ModelFileError(
        f"llama.cpp could not load {file.path} ({detail})",
        hint="check the file (download it again), or run the model with Ollama",
    )


def _formatter(llama_cpp: Any, llm: Any, info: GGUFInfo) -> Any:
    """The GGUF's own chat template (ChatML when the file has none)."""
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = info.chat_template or CHATML
    eos = llm.token_eos()
    bos = llm.token_bos()
    eos_text = llm._model.token_get_text(eos) if eos != -1 else ""
    bos_text = llm._model.token_get_text(bos) if bos != -1 else ""
    return Jinja2ChatFormatter(template, eos_text, bos_text, stop_token_ids=[eos])


CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + "
    "message['content'] + '<|im_end|>\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
