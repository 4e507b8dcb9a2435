"""Errors of the embedding engines (kept here, not in `cozy.core.errors`)."""

from __future__ import annotations

from cozy.core.errors import EngineError


class EmbeddingUnavailable(EngineError):
    """The local embedding model is missing, incomplete or not the official release."""

    http_status = 503
    code = "embedding_unavailable"
