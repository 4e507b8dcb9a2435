"""The HTTP side of the OpenAI provider: one httpx client, retries, status errors, and
the server-sent events of a streamed answer.

Why not the official `openai` SDK: importing it costs more than the rest of a
one-shot `cozy run` put together (~0.25 s of a ~0.4 s run on an idle machine,
measured with `python -X importtime`; its typed models for every endpoint load
eagerly). cozy needs four JSON endpoints (chat completions, streamed or not,
models, one model), so it speaks them over httpx, which the Ollama SDK loads
anyway, and keeps the SDK's documented retry policy: connection errors, 408,
409, 429 and 5xx are retried `max_retries` times with exponential backoff,
honouring `retry-after-ms` / `retry-after` up to a minute, before any byte of
the answer is read.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import os
import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

from cozy.core.errors import (
    ContextTooLarge,
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.engines.ai._common import backoff, import_httpx

if TYPE_CHECKING:
    import httpx

KEY_HINT = "set OPENAI_API_KEY (or `cozy keys set openai`), or `ai.providers.openai.api_key`"
RETRY_STATUS = frozenset({408, 409, 429})
MAX_RETRY_AFTER = 60.0


class OpenAIHTTP:
    """A lazily opened httpx client for an OpenAI-compatible base URL."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        organization: str | None = None,
        timeout: float = 60.0,
        connect_timeout: float | None = None,
        max_retries: int = 2,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.connect_timeout = timeout if connect_timeout is None else connect_timeout
        self.max_retries = max(0, max_retries)
        self._headers = {"Authorization": f"Bearer {api_key}", "Accept": "application/json"}
        if organization:
            self._headers["OpenAI-Organization"] = organization
        self._client: httpx.AsyncClient | None = None

    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            httpx = import_httpx()
            self._client = httpx.AsyncClient(
                base_url=self.base_url + "/",
                headers=self._headers,
                timeout=httpx.Timeout(self.timeout, connect=self.connect_timeout),
                verify=_needs_tls(self.base_url),
            )
        return self._client

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.aclose()

    async def send(
        self, method: str, path: str, body: Any = None, *, stream: bool = False, model: str = ""
    ) -> httpx.Response:
        """A 2xx response (streamed unread when `stream`), after retries; else a cozy error."""
        httpx = import_httpx()
        client = self.client()
        attempt = 0
        while True:
            request = client.build_request(method, path.lstrip("/"), json=body)
            try:
                resp = await client.send(request, stream=stream)
            except httpx.TransportError as exc:  # timeouts included
                if attempt < self.max_retries:
                    await asyncio.sleep(backoff(attempt, 0.5))
                    attempt += 1
                    continue
                raise self._transport_error(exc) from exc
            if resp.status_code < 400:
                return resp
            try:
                await resp.aread()
            finally:
                await resp.aclose()
            if attempt < self.max_retries and _retryable(resp):
                await asyncio.sleep(_retry_delay(resp, attempt))
                attempt += 1
                continue
            raise self._status_error(resp, model)

    async def events(self, path: str, body: Any, *, model: str = "") -> AsyncIterator[str]:
        """The `data` of each event of a streamed answer, `[DONE]` left out."""
        resp = await self.send("POST", path, body, stream=True, model=model)
        try:
            async for data in sse_data(resp.aiter_lines()):
                if not data.startswith("[DONE]"):  # read on to the end: the connection is reused
                    yield data
        finally:
            await resp.aclose()

    def _transport_error(self, exc: Exception) -> ModelUnreachableError:
        if isinstance(exc, import_httpx().TimeoutException):
            return ModelUnreachableError(
                f"the model server at {self.base_url} did not answer within {self.timeout:g}s",
                hint="raise `ai.providers.openai.timeout` in engines.yaml or check the server",
            )
        return ModelUnreachableError(
            f"the OpenAI-compatible server is not reachable at {self.base_url}",
            hint="check that it is running, and `ai.providers.openai.base_url` in "
            "engines.yaml or OPENAI_BASE_URL",
        )

    def _status_error(self, resp: httpx.Response, model: str) -> Exception:
        where, status = self.base_url, resp.status_code
        body = _json_or_none(resp)
        if status in (401, 403):
            return ModelAuthError(
                f"the model server at {where} rejected the API key ({status})", hint=KEY_HINT
            )
        if status == 404:
            return ModelNotFound(
                f"model '{model}' is not available at {where}",
                hint="list the available models with `cozy models`, then set "
                "`ai.providers.openai.default_model` in engines.yaml",
            )
        if status == 429:
            return ModelRateLimited(
                f"the model server at {where} is rate limiting requests",
                hint="wait and retry, or raise `ai.providers.openai.max_retries` in engines.yaml",
            )
        if error_code(body) == "context_length_exceeded":
            return ContextTooLarge(
                f"the conversation is too long for model '{model}'",
                hint="start a new session (`cozy run -s new`), or set the model's window in "
                "`ai.context_windows` in engines.yaml",
            )
        message = error_message(body) or resp.text[:200] or resp.reason_phrase
        return ModelError(f"the model server at {where} answered {status}: {message}")


async def sse_data(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """The `data` of each server-sent event (multi-line data joined; comments skipped).

    A dozen lines rather than a dependency for server-sent events.
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


def decode_chunk(data: str, where: str) -> dict[str, Any]:
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


def _needs_tls(url: str) -> bool:
    """Plain-HTTP servers (a local vLLM, llama.cpp, LM Studio) never use the TLS context,
    and building it (loading the CA bundle) is ~30% of opening the client; redirects
    are not followed, so no https URL is reached. Through a proxy, keep it."""
    proxied = any(k.lower().endswith("_proxy") for k in os.environ)
    return proxied or not url.startswith("http://")


def _retryable(resp: httpx.Response) -> bool:
    should = str(resp.headers.get("x-should-retry", ""))
    if should in ("true", "false"):
        return should == "true"
    status: int = resp.status_code
    return status in RETRY_STATUS or status >= 500


def _retry_delay(resp: httpx.Response, attempt: int) -> float:
    """The server's `retry-after-ms` / `retry-after` when sane, else exponential backoff."""
    seconds: float | None = None
    ms = resp.headers.get("retry-after-ms")
    after = resp.headers.get("retry-after")
    try:
        if ms is not None:
            seconds = float(ms) / 1000
        elif after is not None:
            seconds = float(after)
    except ValueError:
        parsed = email.utils.parsedate_tz(after) if after else None
        if parsed is not None:
            seconds = email.utils.mktime_tz(parsed) - time.time()
    if seconds is not None and 0 <= seconds <= MAX_RETRY_AFTER:
        return seconds
    return backoff(attempt, 0.5)


def _json_or_none(resp: httpx.Response) -> Any:
    try:
        return resp.json()
    except ValueError:
        return None


def error_code(body: Any) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error")
        code = body.get("code") or (inner.get("code") if isinstance(inner, dict) else None)
        return str(code) if code else None
    return None


def error_message(body: Any) -> str | None:
    if isinstance(body, dict):
        inner = body.get("error")
        message = body.get("message") or (inner.get("message") if isinstance(inner, dict) else None)
        if not message and isinstance(inner, str):
            message = inner
        return str(message) if message else None
    return None
