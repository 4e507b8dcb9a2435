"""AI engine on the official `openai` SDK: OpenAI or any OpenAI-compatible server.

Options (engines.yaml `ai.providers.openai`): `base_url`, `api_key`, `timeout`,
`idle_timeout`, `connect_timeout`, `max_retries`, `default_model`, `organization`,
`stream_usage` (ask for a final usage chunk, default true). `OPENAI_BASE_URL` /
`OPENAI_API_KEY` apply when the option is not set. The SDK retries connection
errors, 429 and 5xx itself, with exponential backoff, before any streamed text
arrives.

Deadlines: `timeout` bounds a whole call until the answer starts (connect, every
retry and the server's thinking), so a silent server is reported once, within
`timeout`, never once per retry; a stream then fails when no chunk arrives for
`idle_timeout` s.
"""

from __future__ import annotations

import contextlib
import functools
import json
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from cozy.core.errors import (
    ContextTooLarge,
    CozyError,
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
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
from cozy.engines.ai._common import ToolNames, paced, wire_messages, within
from cozy.engines.base import AIEngine, EngineContext, Health
from cozy.engines.openai_compat import EndpointOptions, OpenAIEndpoint

if TYPE_CHECKING:
    from openai import AsyncOpenAI

KEY_HINT = "set OPENAI_API_KEY, or `ai.providers.openai.api_key` in engines.yaml"


class OpenAIOptions(EndpointOptions):
    timeout: float = Field(default=60.0, gt=0)
    idle_timeout: float | None = Field(default=None, gt=0)  # default: min(timeout, 60)
    connect_timeout: float | None = Field(default=None, gt=0)  # default: min(timeout, 10)
    max_retries: int = Field(default=2, ge=0)
    default_model: str = "gpt-4o-mini"
    stream_usage: bool = True


class OpenAIProvider(AIEngine):
    """Chat through `/v1/chat/completions` (streaming, tools, usage)."""

    Options = OpenAIOptions
    provider_name: ClassVar[str] = "openai"
    can_stream: ClassVar[bool] = True
    supports_tools: ClassVar[bool] = True

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = OpenAIOptions.of(self.options, "ai.providers.openai")
        self.endpoint = OpenAIEndpoint.from_options(o)
        self.base_url = self.endpoint.base_url
        self.timeout = o.timeout
        self.idle_timeout = o.idle_timeout or min(self.timeout, 60.0)
        self.connect_timeout = o.connect_timeout or min(self.timeout, 10.0)
        self.max_retries = o.max_retries
        self.default_model = o.default_model or "gpt-4o-mini"
        self.stream_usage = o.stream_usage
        self._client: AsyncOpenAI | None = None

    # -- lifecycle ---------------------------------------------------------
    async def initialize(self) -> None:
        self._get_client()

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            import openai

            self._client = self.endpoint.async_client(
                key=self.endpoint.key(what="no OpenAI API key is set", hint=KEY_HINT),
                # per socket read: a silent stream is cut by `idle_timeout` (our own
                # deadline below also covers the SDK's retries, which this cannot)
                timeout=openai.Timeout(
                    max(self.timeout, self.idle_timeout), connect=self.connect_timeout
                ),
                max_retries=self.max_retries,
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()

    async def health_check(self) -> Health:
        try:
            models = await self.list_models()
        except CozyError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        return Health(ok=True, detail=f"{self.base_url}: {len(models)} models")

    # -- errors --------------------------------------------------------------
    @contextlib.contextmanager
    def _errors(self, model: str = "") -> Iterator[None]:
        """Translate every vendor exception into a cozy error (the one place)."""
        import httpx
        import httpx2
        import openai

        where = self.base_url
        try:
            yield
        except CozyError:
            raise
        except openai.APITimeoutError as exc:
            raise ModelUnreachableError(
                f"the model server at {where} did not answer within {self.timeout:g}s",
                hint="raise `ai.providers.openai.timeout` in engines.yaml or check the server",
            ) from exc
        except openai.APIConnectionError as exc:
            raise ModelUnreachableError(
                f"the OpenAI-compatible server is not reachable at {where}",
                hint="check that it is running, and `ai.providers.openai.base_url` in engines.yaml "
                "or OPENAI_BASE_URL",
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ModelAuthError(
                f"the model server at {where} rejected the API key ({exc.status_code})",
                hint=KEY_HINT,
            ) from exc
        except openai.NotFoundError as exc:
            raise ModelNotFound(
                f"model '{model}' is not available at {where}",
                hint="list the available models with `cozy models`, then set "
                "`ai.providers.openai.default_model` in engines.yaml",
            ) from exc
        except openai.RateLimitError as exc:
            raise ModelRateLimited(
                f"the model server at {where} is rate limiting requests",
                hint="wait and retry, or raise `ai.providers.openai.max_retries` in engines.yaml",
            ) from exc
        except openai.APIStatusError as exc:
            if _error_code(exc) == "context_length_exceeded":
                raise ContextTooLarge(
                    f"the conversation is too long for model '{model}'",
                    hint="start a new session, or lower the context budget",
                ) from exc
            raise ModelError(
                f"the model server at {where} answered {exc.status_code}: {_error_message(exc)}"
            ) from exc
        except openai.OpenAIError as exc:
            if "credentials" in str(exc) or "api_key" in str(exc):
                raise ModelAuthError("no OpenAI API key is set", hint=KEY_HINT) from exc
            raise ModelError(f"the OpenAI client failed: {exc}") from exc
        except (httpx2.TimeoutException, httpx.TimeoutException) as exc:  # mid-stream
            raise ModelUnreachableError(
                f"the model server at {where} stopped answering for {self.timeout:g}s",
                hint="raise `ai.providers.openai.timeout` in engines.yaml or check the server",
            ) from exc
        except (httpx2.TransportError, httpx.TransportError) as exc:
            raise ModelUnreachableError(
                f"the connection to the model server at {where} was lost ({exc!r})",
                hint="check that the server is running; the answer was cut short",
            ) from exc

    def _silent(self, first: bool = True) -> ModelUnreachableError:
        if first:
            retries = f", {self.max_retries} retries included" if self.max_retries else ""
            return ModelUnreachableError(
                f"the model server at {self.base_url} did not answer within "
                f"{self.timeout:g}s (ai.timeout{retries})",
                hint="check the server, or raise `ai.timeout` in engines.yaml",
            )
        return ModelUnreachableError(
            f"the model server at {self.base_url} stopped sending the answer "
            f"(nothing for {self.idle_timeout:g}s); the partial answer was kept",
            hint="check the server, or raise `ai.idle_timeout` in engines.yaml",
        )

    # -- requests --------------------------------------------------------------
    def _params(
        self,
        messages: Sequence[Message],
        model: str,
        tools: Sequence[ToolSpec] | None,
        options: GenerationOptions | None,
    ) -> dict[str, Any]:
        params: dict[str, Any] = {
            "model": model or self.default_model,
            "messages": [m.to_openai() for m in wire_messages(messages)],
        }
        if tools:
            params["tools"] = [t.to_openai() for t in tools]
        if options is not None:
            for key in ("temperature", "top_p", "max_tokens", "stop", "seed", "response_format"):
                value = getattr(options, key)
                if value is not None:
                    params[key] = value
            if tools:  # OpenAI refuses tool_choice / parallel_tool_calls without tools
                if options.tool_choice is not None:
                    params["tool_choice"] = _wire_choice(options.tool_choice)
                if options.parallel_tool_calls is not None:
                    params["parallel_tool_calls"] = options.parallel_tool_calls
            if options.extra:
                params["extra_body"] = dict(options.extra)
        return params

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> ChatResult:
        params = self._params(messages, model, tools, options)
        names = ToolNames(tools)
        with self._errors(params["model"]):
            resp = await within(
                self.timeout, self._get_client().chat.completions.create(**params), self._silent
            )
        if not resp.choices:
            raise ModelError(f"the model server at {self.base_url} returned no choices")
        choice = resp.choices[0]
        calls = [
            ToolCall(c.id, names.name(c.function.name), c.function.arguments or "{}", i)
            for i, c in enumerate(choice.message.tool_calls or [])
            if getattr(c, "function", None) is not None
        ]
        usage = None
        if resp.usage is not None:
            usage = Usage(resp.usage.prompt_tokens, resp.usage.completion_tokens)
        return ChatResult(
            content=choice.message.content or "",
            tool_calls=calls,
            finish_reason=choice.finish_reason,
            usage=usage,
            model=resp.model or params["model"],
        )

    async def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[StreamChunk]:
        params = self._params(messages, model, tools, options)
        params["stream"] = True
        if self.stream_usage:
            params["stream_options"] = {"include_usage": True}
        names = ToolNames(tools)
        calls: dict[int, ToolCall] = {}
        finish: str | None = None
        usage: Usage | None = None
        # `client.post` (the SDK's documented call for any path) sends the request with
        # the client's retries, auth and status errors, but skips the typed-params
        # transform pass (~0.3 ms a request, growing with the history). The chunks are
        # decoded here with json.loads into plain dicts: building the SDK's pydantic
        # chunk models was the largest cost of a served turn (~1/3 of `cozy serve`'s CPU).
        body = dict(params)
        body.update(body.pop("extra_body", None) or {})
        events = paced(
            self._events(body),
            first_within=self.timeout,
            idle=self.idle_timeout,
            stalled=self._silent,
        )
        async with contextlib.aclosing(events):
            with self._errors(params["model"]):
                async for data in events:
                    chunk = _decode_chunk(data, self.base_url)
                    if chunk.get("usage"):
                        u = chunk["usage"]
                        usage = Usage(
                            int(u.get("prompt_tokens") or 0), int(u.get("completion_tokens") or 0)
                        )
                    for choice in chunk.get("choices") or ():
                        delta = choice.get("delta") or {}
                        for part in delta.get("tool_calls") or ():
                            index = int(part.get("index") or 0)
                            call = calls.setdefault(index, ToolCall("", "", "", index))
                            call.id = part.get("id") or call.id
                            function = part.get("function")
                            if function:
                                call.name += function.get("name") or ""
                                call.arguments += function.get("arguments") or ""
                        if choice.get("finish_reason"):
                            finish = choice["finish_reason"]
                        if delta.get("content"):
                            yield StreamChunk(delta=delta["content"])
        assembled = [
            ToolCall(c.id or f"call_{i}", names.name(c.name), c.arguments or "{}", i)
            for i, c in sorted(calls.items())
        ]
        yield StreamChunk(tool_calls=assembled or None, finish_reason=finish, usage=usage)

    async def _events(self, body: dict[str, Any]) -> AsyncIterator[str]:
        """The `data` of each event of a streamed completion, `[DONE]` left out."""
        resp: Any = await self._get_client().post(
            "/chat/completions", cast_to=_sdk_response_type(), body=body, stream=True
        )
        try:
            async for data in _sse_data(resp.aiter_lines()):
                if not data.startswith("[DONE]"):  # read on to the end: the connection is reused
                    yield data
        finally:
            await resp.aclose()

    async def list_models(self) -> list[ModelInfo]:
        with self._errors():
            page = await self._get_client().models.list()
        return [
            ModelInfo(
                id=m.id,
                provider=self.provider_name,
                context_window=_window_of(m),
                details={"owned_by": m.owned_by},
            )
            for m in page.data
        ]

    async def context_window(self, model: str) -> int | None:
        """From the server's model metadata where it gives one (vLLM, LM Studio, ...)."""
        try:
            with self._errors(model):
                info = await self._get_client().models.retrieve(model)
        except CozyError:
            return None
        return _window_of(info)


async def _sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined; comments skipped).

    A dozen lines rather than a dependency: the SDK's own decoder is private.
    """
    parts: list[str] = []
    async for line in lines:
        if not line:
            if parts:
                yield "\n".join(parts)
                parts = []
        elif line.startswith("data:"):
            parts.append(line[6:] if line.startswith("data: ") else line[5:])
    if parts:
        yield "\n".join(parts)


@functools.cache
def _sdk_response_type() -> type:
    """The HTTP response class of the installed SDK's transport (`httpx2` in openai 3,
    `httpx` in openai 2, which the cognee venv pins): `client.post` streams raw only
    when asked for exactly that class."""
    import sys

    import openai

    base = openai.DefaultAsyncHttpxClient.__mro__[1]  # httpx(2).AsyncClient
    return sys.modules[base.__module__.split(".")[0]].Response  # type: ignore[no-any-return]


def _decode_chunk(data: str, where: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError as exc:
        raise ModelError(f"the model server at {where} sent a chunk that is not JSON") from exc
    if not isinstance(chunk, dict):
        raise ModelError(f"the model server at {where} sent a chunk that is not an object")
    error = chunk.get("error")
    if error:  # an error reported inside the stream
        message = error.get("message") if isinstance(error, dict) else None
        raise ModelError(
            f"the model server at {where} failed mid-answer: {message or 'an error occurred'}"
        )
    return chunk


def _window_of(model: Any) -> int | None:
    extra = getattr(model, "model_extra", None) or {}
    for key in ("context_window", "context_length", "max_model_len", "max_context_length"):
        value = extra.get(key)
        if isinstance(value, int) and value > 0:
            return value
    return None


def _error_code(exc: Any) -> str | None:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        code = body.get("code") or (body.get("error") or {}).get("code")
        return str(code) if code else None
    return None


def _error_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        message = body.get("message") or (body.get("error") or {}).get("message")
        if message:
            return str(message)
    return str(getattr(exc, "message", exc))


def _wire_choice(choice: str | dict[str, Any]) -> str | dict[str, Any]:
    """A named tool choice uses the wire name (dots are not allowed in OpenAI names)."""
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return {**choice, "function": {**fn, "name": fn["name"].replace(".", "__")}}
    return choice
