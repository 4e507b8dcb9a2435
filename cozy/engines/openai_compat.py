"""One connection to an OpenAI-compatible server: base URL, key, client.

The AI engine, the embedder, speech to text, text to speech and cognee's setup all
talk to OpenAI-compatible servers; they resolve where and with which key the same
way here (engines.yaml option, else `OPENAI_BASE_URL` / `OPENAI_API_KEY`, else
OpenAI itself) and build their SDK clients from the same object.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from cozy.core.errors import ModelAuthError
from cozy.engines.base import EngineOptions

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

OPENAI_URL = "https://api.openai.com/v1"
NO_KEY = "no-key-needed"  # local OpenAI-compatible servers ignore the key but want one


def secret(value: Any) -> str | None:
    """A plain string from a str or pydantic `SecretStr` (None when empty)."""
    if value is None:
        return None
    getter = getattr(value, "get_secret_value", None)
    text = getter() if callable(getter) else str(value)
    return text or None


class EndpointOptions(EngineOptions):
    """The connection part of a provider's options (its Options model extends this)."""

    base_url: str | None = None
    api_key: SecretStr | None = None
    organization: str | None = None


@dataclass(frozen=True, slots=True)
class OpenAIEndpoint:
    base_url: str
    api_key: str | None = None
    organization: str | None = None

    @classmethod
    def of(
        cls, base_url: str | None = None, api_key: Any = None, organization: str | None = None
    ) -> OpenAIEndpoint:
        base = str(base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        key = secret(api_key) or secret(os.environ.get("OPENAI_API_KEY"))
        return cls(base, key, organization)

    @classmethod
    def from_options(cls, options: EndpointOptions) -> OpenAIEndpoint:
        return cls.of(options.base_url, options.api_key, options.organization)

    @property
    def is_openai(self) -> bool:
        return self.base_url == OPENAI_URL

    def key(self, *, what: str, hint: str) -> str:
        """The key to send: OpenAI itself needs a real one (else ModelAuthError naming
        `hint`); another server gets a placeholder header when none is set."""
        if self.api_key:
            return self.api_key
        if self.is_openai:
            raise ModelAuthError(what, hint=hint)
        return NO_KEY

    def async_client(self, *, key: str, timeout: Any, max_retries: int) -> AsyncOpenAI:
        from openai import AsyncOpenAI

        return AsyncOpenAI(
            api_key=key,
            base_url=self.base_url,
            organization=self.organization,
            timeout=timeout,
            max_retries=max_retries,
        )

    def sync_client(self, *, key: str, timeout: Any, max_retries: int) -> OpenAI:
        from openai import OpenAI

        return OpenAI(
            api_key=key,
            base_url=self.base_url,
            organization=self.organization,
            timeout=timeout,
            max_retries=max_retries,
        )
