"""Small helpers shared by the embedding providers (no provider imports another)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

from cozy.core.errors import CozyError, ModelError
from cozy.engines.base import EmbedEngine, Health


def batches(texts: Sequence[str], size: int) -> Iterator[list[str]]:
    for start in range(0, len(texts), size):
        yield list(texts[start : start + size])


def check_vectors(
    vectors: Sequence[Sequence[float]], *, expected: int, dimensions: int, where: str
) -> int:
    """Validate a provider's answer; returns the (possibly newly learned) dimensions."""
    if len(vectors) != expected:
        raise ModelError(
            f"{where} returned {len(vectors)} embeddings for {expected} inputs",
            hint="check that the configured model is an embedding model",
        )
    for vec in vectors:
        if not vec:
            raise ModelError(
                f"{where} returned an empty embedding",
                hint="check that the configured model is an embedding model",
            )
        if dimensions and len(vec) != dimensions:
            raise ModelError(
                f"{where} returned {len(vec)}-dimensional embeddings, expected {dimensions}",
                hint="set `embed.options.dimensions` to match the model, or leave it unset",
            )
        dimensions = dimensions or len(vec)
    return dimensions


class RemoteEmbedder(EmbedEngine):
    """What the HTTP embedders share: the batching loop with its checks, and a real
    health check that embeds one string. A subclass sets `batch_size` and
    `requested_dimensions` and sends one batch in `_embed_batch`."""

    batch_size: int
    requested_dimensions: int | None
    _learned: int = 0  # dims seen in a real answer (a table of known models is only a guess)

    def _where(self) -> str:
        raise NotImplementedError

    async def _embed_batch(self, texts: list[str]) -> list[list[float]]:
        """One request: the vectors of `texts`, in order (vendor errors translated)."""
        raise NotImplementedError

    async def embed(self, texts: Sequence[str]) -> list[list[float]]:
        if not texts:
            return []
        if isinstance(texts, str):
            raise TypeError("embed() takes a sequence of strings, not a single string")
        out: list[list[float]] = []
        for chunk in batches(texts, self.batch_size):
            vectors = await self._embed_batch(chunk)
            self._learned = check_vectors(
                vectors,
                expected=len(chunk),
                dimensions=self.requested_dimensions or self._learned,
                where=self._where(),
            )
            self.dimensions = self._learned
            out.extend(vectors)
        return out

    async def health_check(self) -> Health:
        try:
            (vec,) = await self.embed(["cozy health check"])
        except CozyError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        return Health(ok=True, detail=f"{self._where()}: {len(vec)} dimensions")
