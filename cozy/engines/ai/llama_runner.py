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

Loading a model file (its checks, threads, chat template) is `llama_load.py`.
"""

from __future__ import annotations

import asyncio
import itertools
import queue
import threading
import time
from collections.abc import AsyncIterator, Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any

from cozy.core.errors import CozyError, EngineError, ModelBusy
from cozy.engines.ai.llama_load import Loaded, LoadOptions, load
from cozy.engines.ai.local_models import ModelFile

INTERACTIVE, BACKGROUND = 0, 1
_END = object()


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
