"""AI engine for OpenAI or any OpenAI-compatible server (vLLM, llama.cpp, LM Studio...).

Options (engines.yaml `ai.providers.openai`): `base_url`, `api_key`, `timeout`,
`idle_timeout`, `connect_timeout`, `max_retries`, `default_model`, `organization`,
`stream_usage` (ask for a final usage chunk, default true). `OPENAI_BASE_URL` /
`OPENAI_API_KEY` apply when the option is not set. Connection errors, 429 and 5xx
are retried with exponential backoff before any streamed text arrives (see
`openai_http`, which also says why this speaks HTTP rather than importing the
`openai` SDK). Deadlines: `_common.RemoteProvider`.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from typing import Any, ClassVar

from cozy.core.errors import CozyError, ModelError, ModelUnreachableError
from cozy.core.types import ChatResult, ModelInfo, StreamChunk, ToolCall, Usage
from cozy.engines.ai._common import Call, RemoteOptions, RemoteProvider, import_httpx, wire_messages
from cozy.engines.ai.openai_http import KEY_HINT, OpenAIHTTP, decode_chunk
from cozy.engines.base import EngineContext, Health
from cozy.engines.openai_compat import EndpointOptions, OpenAIEndpoint


class OpenAIOptions(EndpointOptions, RemoteOptions):
    default_model: str = "gpt-4o-mini"
    stream_usage: bool = True


class OpenAIProvider(RemoteProvider):
    """Chat through `/v1/chat/completions` (streaming, tools, usage)."""

    Options = OpenAIOptions
    provider_name: ClassVar[str] = "openai"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = OpenAIOptions.of(self.options, "ai.providers.openai")
        self.endpoint = OpenAIEndpoint.from_options(o)
        self.base_url = self.endpoint.base_url
        self.where = f"the model server at {self.base_url}"
        self._deadlines(o)
        self.default_model = o.default_model or "gpt-4o-mini"
        self.stream_usage = o.stream_usage
        self._http: OpenAIHTTP | None = None

    # -- lifecycle ---------------------------------------------------------
    async def initialize(self) -> None:
        self._get_http()

    def _get_http(self) -> OpenAIHTTP:
        if self._http is None:
            key = self.endpoint.key(what="no OpenAI API key is set", hint=KEY_HINT)
            self._http = OpenAIHTTP(
                self.base_url,
                key,
                organization=self.endpoint.organization,
                # per socket read: a silent stream is cut by `idle_timeout` (our own
                # deadline, `within`/`paced`, also covers the retries, which this cannot)
                timeout=max(self.timeout, self.idle_timeout),
                connect_timeout=self.connect_timeout,
                max_retries=self.max_retries,
            )
        return self._http

    async def close(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            await http.close()

    async def health_check(self) -> Health:
        try:
            models = await self.list_models()
        except CozyError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        return Health(ok=True, detail=f"{self.base_url}: {len(models)} models")

    # -- errors --------------------------------------------------------------
    @contextlib.contextmanager
    def _midstream_errors(self) -> Iterator[None]:
        """Transport failures after the response started (status errors are mapped,
        with retries, in `OpenAIHTTP.send`)."""
        httpx = import_httpx()
        try:
            yield
        except httpx.TimeoutException as exc:
            raise ModelUnreachableError(
                f"{self.where} stopped answering for {self.idle_timeout:g}s",
                hint="check the server, or raise `ai.idle_timeout` in engines.yaml",
            ) from exc
        except httpx.TransportError as exc:
            raise ModelUnreachableError(
                f"the connection to {self.where} was lost ({exc!r})",
                hint="check that the server is running; the answer was cut short",
            ) from exc

    async def _json(self, method: str, path: str, body: Any = None, model: str = "") -> Any:
        resp = await self._get_http().send(method, path, body, model=model)
        try:
            return resp.json()
        except ValueError as exc:
            raise ModelError(
                f"{self.where} answered {path} with something that is not JSON"
            ) from exc

    # -- requests --------------------------------------------------------------
    def _params(self, call: Call) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": call.model or self.default_model,
            "messages": [m.to_openai() for m in wire_messages(call.messages)],
        }
        if call.tools:
            params["tools"] = [t.to_openai() for t in call.tools]
        if (options := call.options) is not None:
            for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "response_format"):
                value = getattr(options, key)
                if value is not None:
                    params[key] = value
            if call.tools:  # OpenAI refuses tool_choice / parallel_tool_calls without tools
                if options.tool_choice is not None:
                    params["tool_choice"] = _wire_choice(options.tool_choice)
                if options.parallel_tool_calls is not None:
                    params["parallel_tool_calls"] = options.parallel_tool_calls
            if options.extra:
                params.update(options.extra)
        return params

    async def _answer(self, call: Call) -> ChatResult:
        params = self._params(call)
        names = call.names
        resp = await self._within(self._json("POST", "chat/completions", params, params["model"]))
        choices = resp.get("choices") if isinstance(resp, dict) else None
        if not choices:
            raise ModelError(f"{self.where} returned no choices")
        choice = choices[0]
        message = choice.get("message") or {}
        calls = [
            ToolCall(
                c.get("id") or f"call_{i}",
                names.name(c["function"].get("name") or ""),
                c["function"].get("arguments") or "{}",
                i,
            )
            for i, c in enumerate(message.get("tool_calls") or [])
            if isinstance(c.get("function"), dict)
        ]
        return ChatResult(
            content=message.get("content") or "",
            tool_calls=calls,
            finish_reason=choice.get("finish_reason"),
            usage=_usage(resp.get("usage")),
            model=resp.get("model") or params["model"],
        )

    async def _stream(self, call: Call) -> AsyncIterator[StreamChunk]:
        params = self._params(call)
        params["stream"] = True
        if self.stream_usage:
            params["stream_options"] = {"include_usage": True}
        names = call.names
        calls: dict[int, ToolCall] = {}
        finish: str | None = None
        usage: Usage | None = None
        # chunks are decoded with json.loads into plain dicts: building typed chunk models
        # was the largest cost of a served turn (~1/3 of `cozy serve`'s CPU)
        model = str(params["model"])
        events = self._paced(self._get_http().events("chat/completions", params, model=model))
        async with contextlib.aclosing(events):
            with self._midstream_errors():
                async for data in events:
                    chunk = decode_chunk(data, self.base_url)
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"])
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        for part in delta.get("tool_calls") or ():
                            index = int(part.get("index") or 0)
                            tc = calls.setdefault(index, ToolCall("", "", "", index))
                            tc.id = part.get("id") or tc.id
                            function = part.get("function")
                            if function:
                                tc.name += function.get("name") or ""
                                tc.arguments += function.get("arguments") or ""
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                        if delta.get("content"):
                            yield StreamChunk(delta=delta["content"])
        assembled = [
            ToolCall(c.id or f"call_{i}", names.name(c.name), c.arguments or "{}", i)
            for i, c in sorted(calls.items())
        ]
        yield StreamChunk(tool_calls=assembled or None, finish_reason=finish, usage=usage)

    async def list_models(self) -> list[ModelInfo]:
        page = await self._within(self._json("GET", "models"))
        data = page.get("data") if isinstance(page, dict) else None
        return [
            ModelInfo(
                id=str(m.get("id")),
                provider=self.provider_name,
                context_window=_window_of(m),
                details={"owned_by": m.get("owned_by")},
            )
            for m in data or ()
            if isinstance(m, dict) and m.get("id")
        ]

    async def context_window(self, model: str) -> int | None:
        """From the server's model metadata where it gives one: vLLM's `max_model_len`,
        LM Studio's `max_context_length`, llama.cpp's `meta.n_ctx_train`; None when the
        server does not say."""
        if self.endpoint.is_openai:
            return None  # OpenAI's API states no windows; cozy knows its models' own
        try:
            info = await self._within(self._json("GET", f"models/{model}", model=model))
        except CozyError:
            info = None
        window = _window_of(info) if isinstance(info, dict) else None
        if window is None:  # llama.cpp and some proxies only answer the list
            try:
                for m in await self.list_models():
                    if m.id == model and m.context_window:
                        return m.context_window
            except CozyError:
                pass
        if window is None:
            window = await self._native_window(model)
        return window

    async def _native_window(self, model: str) -> int | None:
        """The window a server states outside the OpenAI API: llama.cpp's `/props`
        (`n_ctx` it was started with), LM Studio's `/api/v0/models/{id}`."""
        root = self.base_url.removesuffix("/v1")
        for path, read in (
            (f"{root}/props", _props_window),
            (f"{root}/api/v0/models/{model}", _window_of),
        ):
            try:
                data = await self._within(
                    self._json("GET", path, model=model), min(self.timeout, 5)
                )
            except CozyError:
                continue
            window = read(data) if isinstance(data, dict) else None
            if window:
                return window
        return None


def _usage(u: Any) -> Usage | None:
    if not isinstance(u, dict):
        return None
    return Usage(int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0))


def _props_window(props: dict[str, Any]) -> int | None:
    settings = props.get("default_generation_settings")
    value = settings.get("n_ctx") if isinstance(settings, dict) else None
    value = value or props.get("n_ctx")
    return value if isinstance(value, int) and value > 0 else None


def _window_of(model: dict[str, Any] | None) -> int | None:
    """The context window a model listing gives, under the names servers use."""
    if not model:
        return None
    meta = model.get("meta") if isinstance(model.get("meta"), dict) else {}
    for source, key in (
        (model, "context_window"),
        (model, "context_length"),
        (model, "max_model_len"),
        (model, "max_context_length"),
        (model, "loaded_context_length"),
        (meta, "n_ctx"),
        (meta, "n_ctx_train"),
    ):
        value = source.get(key) if isinstance(source, dict) else None
        if isinstance(value, int) and value > 0:
            return value
    return None


def _wire_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """A named tool choice uses the wire name (dots are not allowed in OpenAI names)."""
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {**choice, "function": {**fn, "name": fn["name"].replace(".", "__")}}
    return choice
