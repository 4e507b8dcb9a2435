"""Importing and configuring cognee for `knowledge.cognee` (process-wide: cognee's
config is global).

Every network default is switched off before the import: telemetry, litellm's
model cost map, Hugging Face hub look-ups, tiktoken downloads (pointed at the
encodings litellm ships). Data, system and log roots live under COZY_HOME.
"""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cozy.core.errors import ConfigError, MissingExtraError
from cozy.engines.openai_compat import NO_KEY, OpenAIEndpoint

if TYPE_CHECKING:
    from cozy.engines.config import EnginesConfig

_lock = threading.Lock()
_configured: dict[str, Any] = {}

OFFLINE_ENV = {
    "TELEMETRY_DISABLED": "1",
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "ENABLE_BACKEND_ACCESS_CONTROL": "false",  # cozy scopes users by dataset name
    "CACHING": "false",
    "COGNEE_TRACING_ENABLED": "false",
}


def _offline_env(root: Path) -> None:
    for key, value in OFFLINE_ENV.items():
        os.environ[key] = value
    root.mkdir(parents=True, exist_ok=True)
    env_file = root / ".env"
    env_file.touch()
    os.environ["COGNEE_ENV_FILE"] = str(env_file)  # never a stray .env from the cwd
    os.environ["COGNEE_LOGS_DIR"] = str(root / "logs")
    spec = importlib.util.find_spec("litellm")
    if spec is not None and spec.submodule_search_locations:
        bundled = Path(spec.submodule_search_locations[0]) / "litellm_core_utils" / "tokenizers"
        os.environ["TIKTOKEN_CACHE_DIR"] = str(bundled)


def import_cognee(root: Path) -> Any:
    """Import cognee (slow: seconds) with the network defaults off."""
    with _lock:
        _offline_env(root)
        try:
            import cognee
        except ImportError as exc:
            raise MissingExtraError("cognee", "the cognee knowledge provider") from exc
        return cognee


def configure(root: Path, llm: dict[str, Any], embedding: dict[str, Any]) -> Any:
    """Point cognee at cozy's roots and endpoints (once per process and settings)."""
    cognee = import_cognee(root)
    wanted = {"root": str(root), "llm": llm, "embedding": embedding}
    with _lock:
        if _configured == wanted:
            return cognee
        if _configured and _configured["root"] != str(root):
            raise ConfigError(
                f"cognee is already open on {_configured['root']} in this process",
                hint="cognee's configuration is process-wide: one COZY_HOME per process",
            )
        cognee.config.data_root_directory(str(root / "data"))
        cognee.config.system_root_directory(str(root / "system"))
        cognee.config.set_llm_config(llm)
        cognee.config.set_embedding_config(embedding)
        _configured.clear()
        _configured.update(wanted)
    return cognee


def llm_config(provider: str, model: str, config: EnginesConfig) -> dict[str, Any]:
    """cognee's LLM config for cozy's AI provider (both speak the OpenAI API). The
    provider's options are read through its own Options model: a misspelt one is an
    error naming its file:line, as when the router builds the provider."""
    at = ("ai", "providers", provider)
    raw = config.ai.providers.get(provider, {})
    if provider == "openai":
        from cozy.engines.ai.openai_provider import OpenAIOptions

        endpoint = OpenAIEndpoint.from_options(config.validate_options(OpenAIOptions, raw, at))
        base, key = endpoint.base_url, endpoint.api_key or NO_KEY
    elif provider == "ollama":
        from cozy.engines.ai.ollama_provider import OllamaOptions

        host = _ollama_host(config.validate_options(OllamaOptions, raw, at).host)
        base, key = f"{host}/v1", "ollama"
    else:
        raise ConfigError(
            f"knowledge.cognee cannot use the AI provider '{provider}'",
            hint="use ai provider openai or ollama, or set `knowledge.llm` (cognee's LLM config)",
        )
    return {
        "llm_provider": "custom",
        "llm_endpoint": base.rstrip("/"),
        "llm_model": f"openai/{model}",
        "llm_api_key": str(key),
    }


def embedding_config(config: EnginesConfig) -> dict[str, Any]:
    """cognee's embedding config for cozy's `embed:` engine (it needs an HTTP one), its
    options read through the embedder's Options model (a misspelt one is an error)."""
    section = config.section("embed")
    provider = section.provider
    out: dict[str, Any]
    dims: int | None
    if provider == "openai":
        from cozy.engines.embed.openai_embed import OpenAIEmbedOptions

        oa = config.validate_options(OpenAIEmbedOptions, section.options, ("embed",))
        endpoint = OpenAIEndpoint.from_options(oa)
        dims = oa.dimensions
        out = {
            "embedding_provider": "openai",
            "embedding_endpoint": endpoint.base_url,
            "embedding_model": oa.model or "text-embedding-3-small",
            "embedding_api_key": endpoint.api_key or NO_KEY,
        }
    elif provider == "ollama":
        from cozy.engines.embed.ollama_embed import OllamaEmbedOptions

        ol = config.validate_options(OllamaEmbedOptions, section.options, ("embed",))
        dims = ol.dimensions
        out = {
            "embedding_provider": "ollama",
            "embedding_endpoint": f"{_ollama_host(ol.host)}/api/embed",
            "embedding_model": ol.model or "nomic-embed-text",
        }
    else:
        raise ConfigError(
            f"knowledge.cognee needs an HTTP embedder, and `embed:` is '{provider}'",
            hint="set `embed: {provider: ollama}` or `{provider: openai}`, or give cognee its "
            "own: `knowledge: {provider: cognee, embedding: {embedding_provider: ..., ...}}`",
        )
    if dims:
        out["embedding_dimensions"] = dims
    return out


def _ollama_host(host: str | None) -> str:
    return (host or os.environ.get("OLLAMA_HOST") or "http://localhost:11434").rstrip("/")
