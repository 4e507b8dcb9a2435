"""`embed.openai`: `/v1/embeddings` through the official `openai` SDK, any base URL.

Options (engines.yaml `embed.options`): `base_url` (default `$OPENAI_BASE_URL`, else
OpenAI), `api_key` (default `$OPENAI_API_KEY`; optional for a non-OpenAI base URL),
`model` (default text-embedding-3-small), `dimensions` (sent only when set),
`batch_size` (inputs per request, default 256), `timeout` (seconds, default 60),
`max_retries` (default 2). SDK errors become cozy errors that say what to fix.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, ClassVar

from cozy.core.errors import (
    CozyError,
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.engines.base import EngineContext
from cozy.engines.embed._common import RemoteEmbedder, int_option, secret

if TYPE_CHECKING:
    from openai import AsyncOpenAI

OPENAI_URL = "https://api.openai.com/v1"
DEFAULT_MODEL = "text-embedding-3-small"
KNOWN_DIMENSIONS = {
    "text-embedding-3-small": 1536,
    "text-embedding-3-large": 3072,
    "text-embedding-ada-002": 1536,
}
_NO_KEY = "cozy-no-key"  # OpenAI-compatible servers that need no key still get a header


class OpenAIEmbedder(RemoteEmbedder):
    """Embeddings from any OpenAI-compatible `/v1/embeddings` endpoint."""

    provider_name: ClassVar[str] = "openai"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        opts = self.options
        base = opts.get("base_url") or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL
        self.base_url: str = str(base).rstrip("/")
        self.api_key = secret(opts.get("api_key")) or secret(os.environ.get("OPENAI_API_KEY"))
        self.model: str = str(opts.get("model") or DEFAULT_MODEL)
        self.requested_dimensions = int_option(opts, "dimensions", None, low=1, high=65536)
        self.batch_size = int_option(opts, "batch_size", 256, low=1, high=2048) or 256
        self.max_retries = int_option(opts, "max_retries", 2, low=0, high=10) or 0
        self.timeout = float(opts.get("timeout", 60.0))
        self.dimensions = self.requested_dimensions or KNOWN_DIMENSIONS.get(self.model, 0)
        self._client: AsyncOpenAI | None = None

    def _where(self) -> str:
        return f"the embeddings endpoint {self.base_url} (model {self.model!r})"

    def _get_client(self) -> AsyncOpenAI:
        if self._client is None:
            from openai import AsyncOpenAI

            key = self.api_key
            if key is None:
                if self.base_url == OPENAI_URL:
                    raise ModelAuthError(
                        "no API key for OpenAI embeddings",
                        hint="set OPENAI_API_KEY, or `embed.options.api_key` in engines.yaml "
                        "(or point `embed.options.base_url` at a local server)",
                    )
                key = _NO_KEY
            self._client = AsyncOpenAI(
                api_key=key,
                base_url=self.base_url,
                timeout=self.timeout,
                max_retries=self.max_retries,
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

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
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
        extra: dict[str, Any] = {}
        if self.requested_dimensions:
            extra["dimensions"] = self.requested_dimensions
        client = self._get_client()
        with self._errors():
            response = await client.embeddings.create(
                input=[list(seq) for seq in tokens],
                model=self.model,
                encoding_format="float",
                **extra,
            )
        rows = sorted(response.data, key=lambda item: item.index)
        return [list(map(float, row.embedding)) for row in rows]

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            await client.close()
