"""One connection to an OpenAI-compatible server: base URL, key, client.

The AI engine, the embedder, speech to text, text to speech and cognee's setup all
talk to OpenAI-compatible servers; they resolve where and with which key the same
way here (engines.yaml option, else `OPENAI_BASE_URL` / `OPENAI_API_KEY`, else
OpenAI itself), build their SDK clients from the same object, and the voice servers'
SDK errors say what to fix the same way.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from pydantic import SecretStr

from cozy.core.errors import EngineError, ModelAuthError
from cozy.engines.base import EngineOptions

if TYPE_CHECKING:
    from openai import AsyncOpenAI, OpenAI

SDK = TypeVar("SDK", "AsyncOpenAI", "OpenAI")

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

    def client(self, sdk: type[SDK], *, key: str, timeout: Any, max_retries: int) -> SDK:
        """`sdk` (`openai.AsyncOpenAI` or `openai.OpenAI`) for this endpoint."""
        return sdk(
            api_key=key,
            base_url=self.base_url,
            organization=self.organization,
            timeout=timeout,
            max_retries=max_retries,
        )


def sync_client(o: EndpointOptions, *, timeout: float, max_retries: int) -> OpenAI:
    """A blocking client for a voice server (no key set: a placeholder is sent)."""
    from openai import OpenAI

    endpoint = OpenAIEndpoint.from_options(o)
    key = endpoint.api_key or NO_KEY
    return endpoint.client(OpenAI, key=key, timeout=timeout, max_retries=max_retries)


@contextmanager
def voice_errors(what: str, where: object, section: str, check: str) -> Iterator[None]:
    """A voice server's `openai` SDK failures as EngineErrors naming what to fix."""
    import openai

    try:
        yield
    except openai.APIConnectionError as exc:
        raise EngineError(
            f"the {what} server at {where} is unreachable",
            hint=f"start it, or set {section}.base_url in engines.yaml",
        ) from exc
    except openai.APIStatusError as exc:
        raise EngineError(
            f"the {what} server answered {exc.status_code}: {exc.message}", hint=f"check {check}"
        ) from exc
