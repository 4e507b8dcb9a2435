"""`embed.openai`: `/v1/embeddings` through the official `openai` SDK, any base URL.

Options (engines.yaml `embed.options`): `base_url` (default `$OPENAI_BASE_URL`, else
OpenAI), `api_key` (default `$OPENAI_API_KEY`; optional for a non-OpenAI base URL),
`model` (default text-embedding-3-small), `dimensions` (sent only when set),
`batch_size` (inputs per request, default 256), `timeout` (seconds, default 60),
`max_retries` (default 2). SDK errors become cozy errors that say what to fix.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import Field

from cozy.core.errors import (
    CozyError,
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.engines.base import EngineContext
from cozy.engines.embed._common import RemoteEmbedder
from cozy.engines.openai_compat import EndpointOptions, OpenAIEndpoint

if TYPE_CHECKING:
    from openai import AsyncOpenAI

DEFAULT_MODEL = "text-embedding-3-small"
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}


class OpenAIEmbedOptions(EndpointOptions):
    model: str = DEFAULT_MODEL
    dimensions: int | None = Field(default=None, ge=1, le=65536, strict=True)
    batch_size: int = Field(default=256, ge=1, le=2048, strict=True)
    max_retries: int = Field(default=2, ge=0, le=10, strict=True)
    timeout: float = Field(default=60.0, gt=0)


class OpenAIEmbedder(RemoteEmbedder):
    """Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint."""

    Options = OpenAIEmbedOptions
    provider_name: ClassVar[str] = "openai"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = OpenAIEmbedOptions.of(self.options, "embed")
        self.endpoint = OpenAIEndpoint.from_options(o)
        self.base_url = self.endpoint.base_url
        self.model: str = o.model or DEFAULT_MODEL
        self.requested_dimensions = o.dimensions
        self.batch_size = o.batch_size
        self.max_retries = o.max_retries
        self.timeout = o.timeout
        self.dimensions = self.requested_dimensions or KNOWN_DIMENSIONS.get(self.model, 0)
        self._client: AsyncOpenAI | None = None

    def _where(self) -> str:
        return f"the embeddings endpoint {self.base_url} (model {self.model!r})"

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            key = self.endpoint.key(
                what="no API key for OpenAI embeddings",
                hint="set OPENAI_API_KEY, or `embed.api_key` in engines.yaml "
                "(or point `embed.base_url` at a local server)",
            )
            from openai import AsyncOpenAI

            self._client = self.endpoint.client(
                AsyncOpenAI, key=key, timeout=self.timeout, max_retries=self.max_retries
            )
        return self._client

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Translate `openai` exceptions into cozy errors, once, at the edge."""
        import openai

        where = self._where()
        try:
            yield
        except CozyError:
            raise
        except (openai.APITimeoutError, openai.APIConnectionError) as exc:
            raise ModelUnreachableError(
                f"cannot reach {where}: {exc}",
                hint="start the server, or fix `embed.options.base_url` in engines.yaml "
                "(or OPENAI_BASE_URL)",
            ) from exc
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise ModelAuthError(
                f"{where} rejected the API key ({exc.status_code})",
                hint="set a valid key in OPENAI_API_KEY or `embed.options.api_key`",
            ) from exc
        except openai.NotFoundError as exc:
            raise ModelNotFound(
                f"{where} does not know the model ({exc.message})",
                hint="set `embed.options.model` in engines.yaml to an embedding model "
                "the server serves",
            ) from exc
        except openai.RateLimitError as exc:
            raise ModelRateLimited(
                f"{where} is rate limiting requests",
                hint="retry later, or lower `embed.options.batch_size`",
            ) from exc
        except openai.APIStatusError as exc:
            raise ModelError(
                f"{where} answered {exc.status_code}: {exc.message}",
                hint="check `embed.options` (model, dimensions) and the server's logs",
            ) from exc
        except openai.OpenAIError as exc:
            raise ModelError(
                f"{where} failed: {exc}", hint="check `embed.options` in engines.yaml"
            ) from exc

    async def _embed_batch(self, texts: list[str] | list[list[int]]) -> list[list[float]]:
        extra: dict[str, Any] = {}
        if self.requested_dimensions:
            extra["dimensions"] = self.requested_dimensions
        client = self._get_client()
        with self._errors():
            response = await client.embeddings.create(
                input=texts, model=self.model, encoding_format="float", **extra
            )
        rows = sorted(response.data, key=lambda item: item.index)
        return [list(map(float, row.embedding)) for row in rows]

    async def embed_tokens(self, tokens: Sequence[Sequence[int]]) -> list[list[float]]:
        """Token arrays go upstream as they are (the server's own tokenizer's ids)."""
        return await self._embed_batch([list(seq) for seq in tokens])

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
