"""Loading a GGUF file into llama.cpp: checks before anything loads (hash, header,
memory), the thread count, llama.cpp's log kept for error messages, the chat template.
Called on the worker thread of `llama_runner.py`, which owns the loaded model.
"""

from __future__ import annotations

import collections
import ctypes
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from cozy.core.errors import EngineError, ModelFileError
from cozy.engines.ai.gguf import GGUFInfo, read_info
from cozy.engines.ai.local_models import ModelFile, verify

log = logging.getLogger("cozy.ai.local")

LLAMA_INSTALL_HINT = (
    "run `./install.sh` again (it builds llama-cpp-python; its output says why a build "
    "failed), or use another provider: `ollama serve` (Ollama) or set OPENAI_API_KEY"
)


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
