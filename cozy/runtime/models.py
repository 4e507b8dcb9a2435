"""The models a face may offer and use: listing them, admission to a model's queue,
the note after the bundled model answered, and a router without a runtime (doctor)."""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING

from cozy.core.errors import CozyError
from cozy.engines.ai.choice import automatic as automatic_reason
from cozy.engines.ai.router import ModelRouterImpl
from cozy.engines.capabilities import Admission, AdmitsRequests
from cozy.engines.registry import EngineFactory
from cozy.storage.provider_keys import ProviderKeys

if TYPE_CHECKING:
    from cozy.core.personalities import PersonalityCatalog
    from cozy.core.types import ModelInfo
    from cozy.engines.config import EnginesConfig
    from cozy.settings import Settings

__all__ = ["TINY_MODEL_NOTICE", "Models", "automatic_reason", "model_router", "provider_keys"]

TINY_MODEL_NOTICE = (
    "this answer came from the bundled 135M model, which is small: for better answers start "
    "Ollama (`ollama serve`, `ollama pull llama3.2`), set OPENAI_API_KEY, or use a bigger GGUF "
    "(`-m local:/path/to/model.gguf`, or put it in <data dir>/models)"
)


def model_router(config: EnginesConfig, settings: Settings | None = None) -> ModelRouterImpl:
    """A model router alone, without store or engines (`cozy doctor`'s model check)."""
    keys = provider_keys(settings) if settings is not None else None
    return ModelRouterImpl(config, EngineFactory(), keys)


def provider_keys(settings: Settings) -> ProviderKeys:
    """The keys `cozy keys set PROVIDER` stores, next to engines.yaml."""
    return ProviderKeys(settings.config_dir / "keys.json")


class Models:
    """`runtime.models`: what model pickers, `cozy models` and the server ask about models."""

    def __init__(
        self, router: ModelRouterImpl, personalities: PersonalityCatalog, settings: Settings
    ) -> None:
        self.router = router
        self.personalities = personalities
        self.settings = settings

    async def available(self, provider: str | None = None) -> list[ModelInfo]:
        """The provider's models; without a provider, the default one's and the local
        GGUF files beside them (reading those needs no server)."""
        name = provider or (await self.router.decide()).provider
        engine = await self.router.engine(name)
        models = await engine.list_models()
        if provider is None and name != "local":
            with contextlib.suppress(CozyError):
                models += await (await self.router.engine("local")).list_models()
        return models

    def providers(self) -> list[str]:
        """The AI providers a user can pick models from: the default one, each one
        configured in engines.yaml, and the embedded `local` one (model pickers)."""
        names = [self.router.default_provider, *self.router.config.providers, "local"]
        return list(dict.fromkeys(n for n in names if self.router.factory.registry.has("ai", n)))

    async def admit(
        self, model: str | None, personality: str | None, n: int = 1
    ) -> Admission | None:
        """Hold `n` places for a request on its model's queue when that model has one (the
        embedded model), or raise ModelBusy: the server asks before it commits to an
        answer, so a full queue is a 503 even for a stream. The places go to the
        generations this task starts; `release()` the handle when the request ends.
        None: the model queues nothing here (a server decides for itself)."""
        found = self.personalities.all().get(personality or self.settings.personality)
        try:
            route = await self.router.resolve(model or (found.model if found else None))
        except CozyError:
            return None  # the turn itself reports a model it cannot use
        if isinstance(route.engine, AdmitsRequests):
            return route.engine.admit(n)
        return None

    def tiny_notice(self, label: str) -> str | None:
        """How to get a better model, once per data dir, after the bundled model answered."""
        from cozy.engines.ai.local_models import BUNDLED_NAME

        if label != f"local:{BUNDLED_NAME}":
            return None
        marker = self.settings.data_dir / ".tiny-model-notice-shown"
        if marker.exists():
            return None
        with contextlib.suppress(OSError):  # unwritable data dir: say it again next time
            marker.touch()
        return TINY_MODEL_NOTICE
