"""Personalities: one YAML file each, validated at load.

Packaged profiles come first; files in the user's config dir (profiles/*.yaml)
override them by id or add new ones.
"""

from __future__ import annotations

import fnmatch
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from cozy.core.errors import ConfigError, NotFoundError
from cozy.core.types import GenerationOptions
from cozy.core.yamlconf import load_model


class SamplingOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    temperature: float | None = Field(default=None, ge=0, le=2)
    top_p: float | None = Field(default=None, gt=0, le=1)
    max_tokens: int | None = Field(default=None, gt=0)
    seed: int | None = None
    stop: list[str] | None = None


class ContextSwitches(BaseModel):
    model_config = ConfigDict(extra="forbid")

    memory: bool = True
    profile: bool = True
    knowledge: bool = True
    collections: list[str] = Field(default_factory=list)


class VoiceSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    voice: str = "en-us"
    rate: int = Field(default=175, gt=0)
    # what the user speaks (ISO code, e.g. fr); None: voice.stt.language (auto by default)
    language: str | None = Field(default=None, pattern=r"^(auto|[a-z]{2,3})$")


class Personality(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    description: str = ""
    system_prompt: str
    model: str | None = None
    options: SamplingOptions = Field(default_factory=SamplingOptions)
    tools: list[str] = Field(default_factory=list)
    context: ContextSwitches = Field(default_factory=ContextSwitches)
    token_budget: int | None = Field(default=None, gt=0)
    context_window: int | None = Field(default=None, gt=0)
    voice: VoiceSettings = Field(default_factory=VoiceSettings)
    source: str = Field(default="", exclude=True)

    @field_validator("system_prompt")
    @classmethod
    def _prompt_not_empty(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("system_prompt must not be empty")
        return value

    def allows_tool(self, name: str) -> bool:
        return any(fnmatch.fnmatchcase(name, pattern) for pattern in self.tools)

    def generation_options(self) -> GenerationOptions:
        o = self.options
        return GenerationOptions(
            temperature=o.temperature,
            top_p=o.top_p,
            max_tokens=o.max_tokens,
            seed=o.seed,
            stop=o.stop,
        )

    def summary(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "description": self.description,
            "model": self.model,
            "tools": self.tools,
            "source": self.source,
        }


class PersonalityCatalog:
    """All personalities from the given dirs, cached in-process (L1, TTL 300 s)."""

    def __init__(self, dirs: Iterable[Path], ttl: float = 300.0) -> None:
        self.dirs = [d for d in dirs]
        self.ttl = ttl
        self._cache: dict[str, Personality] | None = None
        self._loaded_at = 0.0

    def _load(self) -> dict[str, Personality]:
        found: dict[str, Personality] = {}
        for directory in self.dirs:
            if not directory.is_dir():
                continue
            for path in sorted(directory.glob("*.y*ml")):
                p = load_model(Personality, path)
                if p.id != path.stem:
                    raise ConfigError(
                        f"{path}:1: id: '{p.id}' does not match the file name '{path.stem}'",
                        hint=f"rename the file to {p.id}{path.suffix} or change the id",
                    )
                p.source = str(path)
                found[p.id] = p
        return found

    def all(self) -> dict[str, Personality]:
        now = time.monotonic()
        if self._cache is None or now - self._loaded_at > self.ttl:
            self._cache = self._load()
            self._loaded_at = now
        return self._cache

    def invalidate(self) -> None:
        self._cache = None

    def get(self, pid: str) -> Personality:
        items = self.all()
        if pid not in items:
            known = ", ".join(sorted(items)) or "none"
            raise NotFoundError(
                f"unknown personality '{pid}'",
                hint=f"known personalities: {known} (see `cozy personalities list`)",
            )
        return items[pid]
