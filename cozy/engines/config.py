"""engines.yaml: which provider each engine uses, with its options.

Each engine section has `provider`, `enabled`, `timeout`; every other key is a
provider option (so `tools: {provider: mcp, servers: ...}` reads naturally), checked
against the provider's `Options` model (engines/base.py) when the runtime builds the
engine: an unknown or malformed option is a ConfigError naming file:line and the
allowed keys. Files are merged section by section (later files win key by key; a part
that names another provider, e.g. `voice.stt`, replaces the one it overrides).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from cozy.core.errors import ConfigError
from cozy.core.yamlconf import config_error, has_key, read_yaml, validate

M = TypeVar("M", bound=BaseModel)


class EngineSection(BaseModel):
    # the keys beside provider/enabled/timeout are the provider's options: kept here,
    # checked (unknown keys are errors) against the provider's Options model
    model_config = ConfigDict(extra="allow")

    provider: str = "none"
    enabled: bool = True
    timeout: float | None = Field(default=None, gt=0)

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.model_extra or {})

    @property
    def active(self) -> bool:
        return self.enabled and self.provider not in ("none", "")


class ToolsSection(EngineSection):
    """`tools:` adds loop options the runtime reads (not passed to the provider)."""

    max_rounds: int = Field(default=10, ge=1, le=10)

    @property
    def options(self) -> dict[str, Any]:
        # `tools.timeout` is the provider's per-call limit (engines.yaml documents it so),
        # not a context engine's: without this it was parsed here and never reached the
        # provider, so every call had the default 30 s
        extra = dict(self.model_extra or {})
        if self.timeout is not None:
            extra.setdefault("timeout", self.timeout)
        return extra

    server_policy: dict[
        Literal["read-only", "write", "network", "dangerous"], Literal["deny", "ask", "allow"]
    ] = Field(default_factory=dict)


class ModelPrice(BaseModel):
    """USD per million tokens, for budgets and `cozy usage`."""

    model_config = ConfigDict(extra="forbid")

    input: float = Field(ge=0)
    output: float = Field(ge=0)


class AISection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    provider: str = "auto"
    model: str | None = None
    timeout: float = Field(default=120.0, gt=0)  # until the answer starts, retries included
    idle_timeout: float = Field(default=60.0, gt=0)  # most silence between streamed chunks
    providers: dict[str, dict[str, Any]] = Field(default_factory=dict)
    aliases: dict[str, str] = Field(default_factory=dict)
    context_windows: dict[str, int] = Field(default_factory=dict)
    prices: dict[str, ModelPrice] = Field(default_factory=dict)  # "provider:model" -> price

    def price(self, model: str) -> ModelPrice | None:
        """The price of a model label (`provider:model`) or an alias of one."""
        return self.prices.get(model) or self.prices.get(self.aliases.get(model, ""))

    @field_validator("aliases")
    @classmethod
    def _aliases_have_provider(cls, value: dict[str, str]) -> dict[str, str]:
        for name, target in value.items():
            if ":" not in target:
                raise ValueError(f"alias '{name}' must be provider:model, got '{target}'")
        return value


class ContextSection(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recent_messages: int = Field(default=20, ge=0)
    # None: the model's context window (asked of the server, or known); a number caps it
    token_budget: int | None = Field(default=None, gt=0)
    reserve_answer_tokens: int = Field(default=1024, ge=0)


def _section(timeout: float | None = None, provider: str = "none") -> Any:
    return Field(default_factory=lambda: EngineSection(provider=provider, timeout=timeout))


class EnginesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    ai: AISection = Field(default_factory=AISection)
    tools: ToolsSection = Field(default_factory=lambda: ToolsSection(provider="builtin"))
    knowledge: EngineSection = _section(0.5)
    profile: EngineSection = _section(0.3)
    memory: EngineSection = _section(0.4)
    embed: EngineSection = _section()
    voice: EngineSection = _section()
    context: ContextSection = Field(default_factory=ContextSection)
    _sources: list[tuple[Path, Any]] = PrivateAttr(default_factory=list)  # (file, YAML tree)

    def validate_options(self, model: type[M], options: dict[str, Any], at: tuple[str, ...]) -> M:
        """`options` (found under `at`, e.g. ("memory",)) as `model`, or a ConfigError
        naming the file and line that set the offending option."""
        try:
            return model.model_validate(options)
        except ValidationError as exc:
            loc = tuple(str(p) for p in exc.errors()[0]["loc"])[:1]
            wrote = [s for s in self._sources if has_key(s[1], (*at, *loc))]
            section = [s for s in self._sources if has_key(s[1], at)]
            found: list[tuple[Path | None, Any]] = [*(wrote or section)] or [(None, None)]
            path, node = found[-1]
            raise config_error(exc, model, path, node, at) from exc

    def section(self, kind: str) -> EngineSection:
        value = getattr(self, kind, None)
        if not isinstance(value, EngineSection):
            raise ConfigError(f"'{kind}' is not an engine section of engines.yaml")
        return value


def _merge(base: dict[str, Any], over: dict[str, Any], depth: int = 0) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        old = out.get(key)
        if isinstance(value, dict) and isinstance(old, dict) and not _switches(old, value, depth):
            out[key] = _merge(old, value, depth + 1)
        else:
            out[key] = value
    return out


def _switches(old: dict[str, Any], new: dict[str, Any], depth: int) -> bool:
    """Below an engine section, a mapping naming another provider (voice.stt: pocketsphinx
    over the packaged faster-whisper) replaces the old one: its options are not the new
    provider's. An engine section itself merges (its timeout applies to any provider)."""
    return depth > 0 and new.get("provider", old.get("provider")) != old.get("provider")


def load_engines_config(files: list[Path]) -> EnginesConfig:
    """Merge and validate engines.yaml files. Errors name the file that is wrong."""
    merged: dict[str, Any] = {}
    sources: list[tuple[Path, Any]] = []
    for path in files:
        if not path.is_file() and path == files[0]:
            continue  # a stripped-down install without the packaged file: use defaults
        data, node = read_yaml(path)
        if data is None:
            continue
        validate(EnginesConfig, data, path, node)  # each file must be valid on its own
        merged = _merge(merged, data)
        sources.append((path, node))
    try:
        config = EnginesConfig.model_validate(_expand(merged))
    except Exception as exc:  # pragma: no cover - each file already validated
        raise ConfigError(f"engines.yaml: {exc}") from exc
    config._sources = sources
    return config


def _expand(data: dict[str, Any]) -> dict[str, Any]:
    from cozy.core.yamlconf import expand_env

    result = expand_env(data)
    assert isinstance(result, dict)
    return result
