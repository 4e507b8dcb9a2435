"""The model router: `provider:model`, aliases and bare model names to an AI engine.

Built once by the runtime and handed to core (the orchestrator, summaries) and to
providers (through `EngineContext.router`) that call a model themselves.
"""

from __future__ import annotations

import asyncio
import os
from typing import Protocol

from cozy.core.errors import ConfigError, CozyError, NotFoundError
from cozy.engines.ai.choice import BY_NAME, Choice, choose, probe_cached
from cozy.engines.base import AIEngine, Route
from cozy.engines.config import EnginesConfig
from cozy.engines.registry import EngineFactory

DEFAULT_MODELS = {"ollama": "llama3.2", "openai": "gpt-4o-mini", "local": "smollm2-135m"}


class UnknownProvider(NotFoundError):
    code = "model_not_found"


# the environment variable that, when set, wins over a key stored with `cozy keys set`
KEY_ENV = {"openai": "OPENAI_API_KEY"}


class KeyLookup(Protocol):
    def get(self, provider: str) -> str | None: ...


class ModelRouterImpl:
    """Resolves `provider:model`, aliases and bare model names to an AI engine."""

    def __init__(
        self, config: EnginesConfig, factory: EngineFactory, keys: KeyLookup | None = None
    ) -> None:
        self.config = config.ai
        self.engines_config = config
        self.factory = factory
        self.keys = keys  # `cozy keys set PROVIDER`: used when neither option nor env is set
        self._engines: dict[str, AIEngine] = {}
        self._lock = asyncio.Lock()

    @property
    def choice(self) -> Choice:
        """The provider that answers by default, and why (see choice.py)."""
        return choose(self.config.provider, self._ollama_host())

    def _ollama_host(self) -> str:
        from cozy.engines.ai.ollama_provider import DEFAULT_HOST, OllamaOptions, normalize_host

        at = ("ai", "providers", "ollama")
        raw = self.config.providers.get("ollama", {})
        host = self.engines_config.validate_options(OllamaOptions, raw, at).host
        return normalize_host(host or os.environ.get("OLLAMA_HOST") or DEFAULT_HOST)

    async def decide(self) -> Choice:
        """`choice`, with the Ollama probe (a blocking connect, cached) off the event loop."""
        if self.config.provider == "auto" and not probe_cached(self._ollama_host()):
            return await asyncio.to_thread(lambda: self.choice)
        return self.choice

    @property
    def default_provider(self) -> str:
        return self.choice.provider

    def split(self, spec: str | None) -> tuple[str, str]:
        if not spec:
            spec = self.config.model or ""
        spec = self.config.aliases.get(spec, spec)
        provider, sep, model = spec.partition(":")
        if sep and self.factory.registry.has("ai", provider):
            return provider, model
        prefix = provider
        provider = self.default_provider
        if sep and prefix != "ft" and not self._tagged(provider):
            known = self.factory.registry.providers("ai")
            raise UnknownProvider(
                f"unknown model provider '{prefix}' in '{spec}'",
                hint=f"use one of {', '.join(f'{k}:MODEL' for k in known)}, or an alias "
                "from engines.yaml",
            )
        if not spec:
            spec = self._default_model(provider) or DEFAULT_MODELS.get(provider, "")
        return provider, spec

    def _default_model(self, provider: str) -> str | None:
        """`default_model` of the provider's options (checked: a misspelt key is an error
        naming its file:line), None when it sets none or is unknown here."""
        try:
            cls = self.factory.registry.get("ai", provider)
        except CozyError:
            return None  # an unusable provider reports itself when it is opened
        at = ("ai", "providers", provider)
        raw = self.config.providers.get(provider, {})
        # a third-party provider without an Options model keeps any keys (OpenOptions)
        value = getattr(
            self.engines_config.validate_options(cls.Options, raw, at), "default_model", None
        )
        return str(value) if value else None

    def _tagged(self, provider: str) -> bool:
        try:
            cls = self.factory.registry.get("ai", provider)
        except CozyError:
            return True  # an unusable provider reports itself when it is opened
        return issubclass(cls, AIEngine) and cls.tagged_model_names

    async def engine(self, provider: str) -> AIEngine:
        async with self._lock:
            if provider not in self._engines:
                options = {
                    "timeout": self.config.timeout,
                    "idle_timeout": self.config.idle_timeout,
                    **self.config.providers.get(provider, {}),
                }
                env = KEY_ENV.get(provider)
                if "api_key" not in options and not (env and os.environ.get(env)):
                    stored = self.keys.get(provider) if self.keys is not None else None
                    if stored:
                        options["api_key"] = stored
                cls = self.factory.registry.get("ai", provider)
                at = ("ai", "providers", provider)
                self.engines_config.validate_options(cls.Options, options, at)
                engine = self.factory.create("ai", provider, options)
                assert isinstance(engine, AIEngine)
                await engine.initialize()
                self._engines[provider] = engine
            return self._engines[provider]

    async def resolve(self, spec: str | None) -> Route:
        choice = await self.decide()
        provider, model = self.split(spec)
        if not model:
            raise ConfigError(
                f"no model chosen for provider '{provider}'",
                hint="pass --model provider:model or set ai.model in engines.yaml",
            )
        named = (spec or self.config.model or "").strip()
        named = self.config.aliases.get(named, named)
        reason = f"{BY_NAME} ({provider}:{model})" if named.startswith(f"{provider}:") else ""
        label = f"{provider}:{model}"
        return Route(await self.engine(provider), model, label, reason or choice.reason)

    async def close(self) -> None:
        for engine in self._engines.values():
            await engine.close()
        self._engines.clear()
