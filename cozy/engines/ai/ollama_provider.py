"""AI engine on the `ollama` SDK.

Options (engines.yaml `ai.providers.ollama`): `host`, `timeout`, `max_retries`,
`default_model`, `keep_alive`, `retry_delay` (first backoff, seconds), `idle_timeout`,
`connect_timeout`. `OLLAMA_HOST` applies when `host` is not set. Connection errors,
429 and 5xx are retried with exponential backoff, but never once text has been yielded.

Deadlines (`_common.RemoteProvider`): `timeout` bounds a whole call until the answer
starts, loading the model included; then `idle_timeout` between parts.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from pydantic import Field

from cozy.core.errors import (
    CozyError,
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.core.types import ChatResult, Message, ModelInfo, StreamChunk, ToolCall, Usage
from cozy.engines.ai._common import (
    Call,
    RemoteOptions,
    RemoteProvider,
    ToolNames,
    backoff,
    import_httpx,
    wire,
    wire_messages,
)
from cozy.engines.base import EngineContext, Health

if TYPE_CHECKING:
    from ollama import AsyncClient

T = TypeVar("T")
DEFAULT_HOST = "http://localhost:11434"
HOST_HINT = (
    "start it with `ollama serve`, or set OLLAMA_HOST / `ai.providers.ollama.host` in engines.yaml"
)


def normalize_host(host: str) -> str:
    """`localhost`, `:11434`, `0.0.0.0:8080`, `https://x` → a full base URL."""
    host = host.strip().rstrip("/")
    scheme, sep, rest = host.partition("://")
    if not sep:
        scheme, rest = "http", host
    hostname, _, port = rest.partition(":")
    if hostname in ("", "0.0.0.0"):
        hostname = "127.0.0.1" if hostname == "0.0.0.0" else "localhost"
    if not port.split("/")[0]:
        port = "443" if scheme == "https" else "11434"
    return f"{scheme}://{hostname}:{port}"


class OllamaOptions(RemoteOptions):
    host: str | None = None  # default: OLLAMA_HOST, else localhost:11434
    timeout: float = Field(default=120.0, gt=0)
    retry_delay: float = Field(default=0.5, ge=0)
    default_model: str = "llama3.2"
    keep_alive: str | float | None = None


class OllamaProvider(RemoteProvider):
    """Chat through Ollama's `/api/chat` (NDJSON streaming, tools, usage)."""

    Options = OllamaOptions

    provider_name: ClassVar[str] = "ollama"
    tagged_model_names: ClassVar[bool] = True
    silent_hint: ClassVar[str] = "check `ollama ps`, use a smaller model"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = OllamaOptions.of(self.options, "ai.providers.ollama")
        self.host = normalize_host(o.host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST)
        self.where = f"Ollama at {self.host}"
        self._deadlines(o)
        self.retry_delay = o.retry_delay
        self.default_model = o.default_model or "llama3.2"
        self.keep_alive: str | float | None = o.keep_alive
        self._client: AsyncClient | None = None

    # -- lifecycle ---------------------------------------------------------
    async def initialize(self) -> None:
        self._get_client()

    def _get_client(self) -> AsyncClient:
        if self._client is None:
            httpx = import_httpx()  # before the SDK imports it: see there
            from ollama import AsyncClient

            # per socket read; our own deadlines (`_silent`) bound the retries too
            timeout = httpx.Timeout(
                max(self.timeout, self.idle_timeout), connect=self.connect_timeout
            )
            self._client = AsyncClient(host=self.host, timeout=timeout)
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client._client.aclose()

    async def health_check(self) -> Health:
        try:
            with self._errors():
                resp = await self._get_client()._client.get("/api/version")
                resp.raise_for_status()
            version = resp.json().get("version", "?")
        except CozyError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        return Health(ok=True, detail=f"Ollama {version} at {self.host}")

    # -- errors --------------------------------------------------------------
    @contextmanager
    def _errors(self, model: str = "") -> Iterator[None]:
        """Translate every vendor exception into a cozy error (the one place)."""
        import httpx
        import ollama

        try:
            yield
        except CozyError:
            raise
        except ollama.ResponseError as exc:
            raise self._status_error(exc.status_code, str(exc.error), model) from exc
        except httpx.HTTPStatusError as exc:
            raise self._status_error(exc.response.status_code, exc.response.text, model) from exc
        except httpx.TimeoutException as exc:
            raise ModelUnreachableError(
                f"Ollama at {self.host} did not answer within {self.timeout:g}s",
                hint="raise `ai.providers.ollama.timeout` in engines.yaml, or use a smaller model",
            ) from exc
        except (ConnectionError, httpx.ConnectError) as exc:
            raise ModelUnreachableError(
                f"Ollama is not reachable at {self.host}", hint=HOST_HINT
            ) from exc
        except httpx.TransportError as exc:
            raise ModelUnreachableError(
                f"the connection to {self.where} was lost ({exc!r})", hint=HOST_HINT
            ) from exc
        except (ollama.RequestError, ValueError) as exc:
            raise ModelError(f"Ollama request failed: {exc}") from exc

    def _status_error(self, status: int, message: str, model: str) -> CozyError:
        if status == 404:
            return ModelNotFound(
                f"model '{model}' is not available in Ollama at {self.host}",
                hint=f"pull it with `ollama pull {model}`, or pick one from `cozy models`",
            )
        if status in (401, 403):
            return ModelAuthError(
                f"Ollama at {self.host} refused the request ({status})",
                hint="set OLLAMA_API_KEY if the server needs a key",
            )
        if status == 429:
            return ModelRateLimited(
                f"Ollama at {self.host} is rate limiting requests",
                hint="wait and retry, or raise `ai.providers.ollama.max_retries` in engines.yaml",
            )
        return ModelError(f"Ollama at {self.host} answered {status}: {message}")

    @staticmethod
    def _retryable(exc: BaseException | None) -> bool:
        import httpx
        import ollama

        if isinstance(exc, ollama.ResponseError):
            return exc.status_code == 429 or exc.status_code >= 500
        if isinstance(exc, httpx.HTTPStatusError):
            return exc.response.status_code == 429 or exc.response.status_code >= 500
        return isinstance(exc, ConnectionError | httpx.TransportError)

    async def _retrying(self, model: str, call: Callable[[], Awaitable[T]]) -> T:
        return await self._within(self._attempts(model, call))

    async def _attempts(self, model: str, call: Callable[[], Awaitable[T]]) -> T:
        attempt = 0
        while True:
            try:
                with self._errors(model):
                    return await call()
            except CozyError as exc:
                if attempt >= self.max_retries or not self._retryable(exc.__cause__):
                    raise
            await asyncio.sleep(backoff(attempt, self.retry_delay))
            attempt += 1

    # -- requests --------------------------------------------------------------
    def _request(self, call: Call) -> dict[str, Any]:
        req: dict[str, Any] = {
            "model": call.model or self.default_model,
            "messages": to_ollama_messages(call.messages),
        }
        if call.tools:
            req["tools"] = [t.to_openai() for t in call.tools]
        if self.keep_alive is not None:
            req["keep_alive"] = self.keep_alive
        if (options := call.options) is not None:
            pairs: dict[str, Any] = {
                "temperature": options.temperature,
                "top_p": options.top_p,
                "num_predict": options.max_tokens,
                "stop": options.stop,
                "seed": options.seed,
                "num_ctx": options.context_window,
            }
            opts = {k: v for k, v in pairs.items() if v is not None}
            opts.update(options.extra)
            if opts:
                req["options"] = opts
            fmt = to_ollama_format(options.response_format)
            if fmt is not None:
                req["format"] = fmt
        return req

    async def _answer(self, call: Call) -> ChatResult:
        req = self._request(call)
        client = self._get_client()
        resp = await self._retrying(req["model"], lambda: client.chat(**req, stream=False))
        calls = _tool_calls(resp.message.tool_calls, call.names)
        return ChatResult(
            content=resp.message.content or "",
            tool_calls=calls,
            finish_reason=_finish(resp.done_reason, calls),
            usage=Usage(resp.prompt_eval_count or 0, resp.eval_count or 0),
            model=resp.model or req["model"],
        )

    async def _stream(self, call: Call) -> AsyncIterator[StreamChunk]:
        req = self._request(call)
        names = call.names
        calls: list[ToolCall] = []
        final: Any = None
        parts = self._paced(self._parts(req))
        async with contextlib.aclosing(parts):
            async for part in parts:
                if part.message.tool_calls:
                    calls.extend(_tool_calls(part.message.tool_calls, names, len(calls)))
                if part.done:
                    final = part
                if part.message.content:
                    yield StreamChunk(delta=part.message.content)
        usage = None
        if final is not None:
            usage = Usage(final.prompt_eval_count or 0, final.eval_count or 0)
        reason = _finish(final.done_reason if final is not None else None, calls)
        yield StreamChunk(tool_calls=calls or None, finish_reason=reason, usage=usage)

    async def _parts(self, req: dict[str, Any]) -> AsyncIterator[Any]:
        """The streamed parts of one chat, retried until the first part arrives."""
        attempt = 0
        started = False
        while True:
            try:
                with self._errors(req["model"]):
                    stream = await self._get_client().chat(**req, stream=True)
                    async for part in stream:
                        started = True
                        yield part
                return
            except CozyError as exc:
                if started or attempt >= self.max_retries or not self._retryable(exc.__cause__):
                    raise
            await asyncio.sleep(backoff(attempt, self.retry_delay))
            attempt += 1

    async def list_models(self) -> list[ModelInfo]:
        client = self._get_client()
        listing = await self._retrying("", client.list)
        names = [m.model for m in listing.models if m.model]
        windows = await asyncio.gather(*(self.context_window(n) for n in names))
        out: list[ModelInfo] = []
        for m, window in zip(listing.models, windows, strict=False):
            details = m.details.model_dump(exclude_none=True) if m.details else {}
            details["size"] = int(m.size or 0)
            out.append(ModelInfo(str(m.model), self.provider_name, window, details))
        return out

    async def _show(self, model: str) -> Any:
        """The server's `/api/show` for `model`, or None when it gives none."""
        try:
            with self._errors(model):
                return await self._get_client().show(model)
        except CozyError:
            return None

    async def accepts_images(self, model: str) -> bool | None:
        """From `/api/show` capabilities ("vision"); None when the server does not say."""
        caps = getattr(await self._show(model), "capabilities", None)
        return "vision" in caps if caps else None

    async def context_window(self, model: str) -> int | None:
        """The model's context length from `/api/show`, or None if unknown."""
        info = await self._show(model)
        for key, value in (getattr(info, "modelinfo", None) or {}).items():
            if key.endswith(".context_length") and isinstance(value, int):
                return value
        return None


def to_ollama_messages(messages: Sequence[Message]) -> list[dict[str, Any]]:
    """cozy messages in Ollama's shape (tool arguments as dicts, `tool_name`)."""
    names: dict[str, str] = {}
    out: list[dict[str, Any]] = []
    for m in wire_messages(messages):
        item: dict[str, Any] = {"role": m.role, "content": m.content}
        if m.images:  # Ollama takes raw base64 images beside the text
            item["images"] = [i.data for i in m.images]
        if m.tool_calls:
            item["tool_calls"] = [
                {"function": {"name": c.name, "arguments": _loads(c.arguments)}}
                for c in m.tool_calls
            ]
            names.update({c.id: c.name for c in m.tool_calls})
        if m.role == "tool":
            tool_name = m.name or names.get(m.tool_call_id or "")
            if tool_name:
                item["tool_name"] = wire(tool_name)
        out.append(item)
    return out


def to_ollama_format(response_format: dict[str, Any] | None) -> str | dict[str, Any] | None:
    """OpenAI `response_format` → Ollama `format` (a JSON schema or "json")."""
    if not response_format:
        return None
    kind = response_format.get("type")
    if kind == "json_schema":
        schema = (response_format.get("json_schema") or {}).get("schema")
        return dict(schema) if isinstance(schema, dict) else "json"
    if kind == "json_object":
        return "json"
    if kind == "text":
        return None
    return dict(response_format)  # already a JSON schema


def _loads(arguments: str) -> dict[str, Any]:
    try:
        value = json.loads(arguments or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _tool_calls(raw: Sequence[Any] | None, names: ToolNames, start: int = 0) -> list[ToolCall]:
    calls: list[ToolCall] = []
    for i, call in enumerate(raw or (), start):
        args = json.dumps(dict(call.function.arguments or {}))
        calls.append(ToolCall(f"call_{i}", names.name(call.function.name), args, i))
    return calls


def _finish(done_reason: str | None, calls: list[ToolCall]) -> str:
    if calls:
        return "tool_calls"
    return "length" if done_reason == "length" else "stop"
