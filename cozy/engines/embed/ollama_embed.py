"""`embed.ollama`: Ollama's `/api/embed` through the `ollama` SDK.

Options (engines.yaml `embed.options`): `host` (default `$OLLAMA_HOST`, else
http://localhost:11434), `model` (default nomic-embed-text), `batch_size` (inputs per
request, default 64), `dimensions` (sent only when set), `truncate` (default true),
`keep_alive`, `timeout` (seconds, default 60). SDK errors become cozy errors that
say what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from cozy.core.errors import (
    CozyError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.engines.base import EngineContext, EngineOptions
from cozy.engines.embed._common import RemoteEmbedder

if TYPE_CHECKING:
    from ollama import AsyncClient

DEFAULT_HOST = "http://localhost:11434"
DEFAULT_MODEL = "nomic-embed-text"
KNOWN_DIMENSIONS = {"nomic-embed-text": 768, "all-minilm": 384, "mxbai-embed-large": 1024}


class OllamaEmbedOptions(EngineOptions):
    host: str | None = None  # default: OLLAMA_HOST, else localhost:11434
    model: str = DEFAULT_MODEL
    batch_size: int = Field(default=64, ge=1, le=4096, strict=True)
    dimensions: int | None = Field(default=None, ge=1, le=65536, strict=True)
    truncate: bool = True
    keep_alive: float | str | None = None
    timeout: float = Field(default=60.0, gt=0)


class OllamaEmbedder(RemoteEmbedder):
    """Embeddings from an Ollama server."""

    Options = OllamaEmbedOptions
    provider_name: ClassVar[str] = "ollama"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = OllamaEmbedOptions.of(self.options, "embed")
        self.host: str = o.host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST
        self.model: str = o.model or DEFAULT_MODEL
        self.batch_size = o.batch_size
        self.requested_dimensions = o.dimensions
        self.truncate = o.truncate
        self.keep_alive: float | str | None = o.keep_alive
        self.timeout = o.timeout
        base_name = self.model.removesuffix(":latest")
        self.dimensions = self.requested_dimensions or KNOWN_DIMENSIONS.get(base_name, 0)
        self._client: AsyncClient | None = None

    def _where(self) -> str:
        return f"Ollama at {self.host} (model {self.model!r})"

    def _get_client(self) -> AsyncClient:
        if self._client is None:
            from ollama import AsyncClient

            self._client = AsyncClient(host=self.host, timeout=self.timeout)
        return self._client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate `ollama` / `httpx` exceptions into cozy errors, once, at the edge."""
        import httpx
        import ollama

        where = self._where()
        try:
            yield
        except CozyError:
            raise
        except (ConnectionError, httpx.TransportError) as exc:
            raise ModelUnreachableError(
                f"cannot reach {where}",
                hint="start Ollama (`ollama serve`), or fix `embed.options.host` in "
                "engines.yaml (or OLLAMA_HOST)",
            ) from exc
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise ModelNotFound(
                    f"{where}: model not found ({exc.error})",
                    hint=f"run `ollama pull {self.model}`, or set `embed.options.model`",
                ) from exc
            if exc.status_code == 429:
                raise ModelRateLimited(
                    f"{where} is rate limiting requests", hint="retry later"
                ) from exc
            raise ModelError(
                f"{where} answered {exc.status_code}: {exc.error}",
                hint="check that the model is an embedding model, and Ollama's logs",
            ) from exc
        except ollama.RequestError as exc:
            raise ModelError(
                f"{where}: bad request ({exc.error})", hint="check `embed.options`"
            ) from exc

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        client = self._get_client()
        with self._errors():
            response = await client.embed(
                model=self.model,
                input=texts,
                truncate=self.truncate,
                keep_alive=self.keep_alive,
                dimensions=self.requested_dimensions,
            )
        return [list(map(float, vec)) for vec in response.embeddings]

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()  # type: ignore[no-untyped-call]
