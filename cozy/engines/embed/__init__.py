"""Embedding engines: `local` (numpy all-MiniLM-L6-v2), `openai`, `ollama`.

Providers are imported lazily through the `cozy.engines` entry points
(`embed.local`, `embed.openai`, `embed.ollama`); nothing heavy is imported here.
"""

from cozy.engines.embed.errors import EmbeddingUnavailable

__all__ = ["EmbeddingUnavailable"]
