"""How big a model's context window is, and how many tokens a prompt costs.

Windows come from, in order: the personality's `context_window`, engines.yaml
`ai.context_windows` (exact model name or provider:model), what the provider
reports (Ollama's `/api/show`, OpenAI-compatible model metadata), a table of
known model families, and a conservative default. Answers are cached per model.

Token counts need no tokenizer download: a per-family estimator starts at about
four characters a token and is calibrated from the usage the provider reports
after each call, so it converges on the real tokenizer (including the chat
template's overhead).
"""

from __future__ import annotations

import contextlib
import re
import time
from dataclasses import dataclass, field

from cozy.core.budget import TokenEstimator
from cozy.engines.base import AIEngine
from cozy.storage.cache import L2Cache

DEFAULT_WINDOW = 4096
PERSIST_WHILE_LEARNING = 20  # samples written every time; after them once a minute

# Context windows of common open and hosted model families (tokens). Facts from the
# model cards; the longest prefix wins.
KNOWN_WINDOWS: dict[str, int] = {
    "llama3.3": 131072,
    "llama3.2": 131072,
    "llama3.1": 131072,
    "llama3": 8192,
    "llama2": 4096,
    "qwen3": 40960,
    "qwen2.5": 32768,
    "qwen2": 32768,
    "mistral-nemo": 131072,
    "mistral": 32768,
    "mixtral": 32768,
    "gemma3": 131072,
    "gemma2": 8192,
    "phi4": 16384,
    "phi3": 4096,
    "deepseek-r1": 131072,
    "command-r": 131072,
    "gpt-4.1": 1047576,
    "gpt-4o": 128000,
    "gpt-4-turbo": 128000,
    "gpt-4": 8192,
    "gpt-3.5-turbo": 16385,
    "o1": 200000,
    "o3": 200000,
    "o4-mini": 200000,
    "gpt-5": 400000,
}


def family(model: str) -> str:
    """`llama3.2:3b-instruct` -> `llama3.2`; `gpt-4o-mini-2024` -> `gpt-4o-mini`."""
    name = model.split("/")[-1].split(":")[0].lower()
    return re.sub(r"-(\d{4}-\d{2}-\d{2}|\d{4}|latest|instruct)$", "", name)


def known_window(model: str) -> int | None:
    name = family(model)
    best = ""
    for prefix in KNOWN_WINDOWS:
        if name.startswith(prefix) and len(prefix) > len(best):
            best = prefix
    return KNOWN_WINDOWS[best] if best else None


@dataclass(slots=True)
class CalibratedEstimator(TokenEstimator):
    """A TokenEstimator whose counts are scaled by what the provider reported."""

    factor: float = 1.0
    samples: int = 0

    def count(self, text: str) -> int:
        if not text:
            return 0
        return max(1, int(len(text) / self.chars_per_token * self.factor + 0.5))

    def observe(self, estimated: int, reported: int) -> None:
        """Blend in one (our estimate, provider's count) pair for the same prompt."""
        if estimated <= 0 or reported <= 0:
            return
        ratio = reported / estimated
        # trust the first report fully, then average so one odd prompt cannot swing it
        weight = 1.0 if self.samples == 0 else (0.5 if self.samples < 4 else 0.25)
        self.factor *= 1 + weight * (ratio - 1)
        self.samples += 1


@dataclass
class TokenAccounting:
    """One calibrated estimator per model family, remembered in the L2 cache if given."""

    cache: L2Cache | None = None
    estimators: dict[str, CalibratedEstimator] = field(default_factory=dict)
    _saved: dict[str, float] = field(default_factory=dict)  # family -> monotonic last write

    async def for_model(self, model: str) -> CalibratedEstimator:
        key = family(model)
        if key not in self.estimators:
            est = CalibratedEstimator()
            saved = None
            if self.cache is not None:
                with contextlib.suppress(Exception):  # a cache problem is never a turn's
                    saved = await self.cache.get("tokens", key)
            if isinstance(saved, dict):
                est.factor = float(saved.get("factor", 1.0))
                est.samples = int(saved.get("samples", 0))
            self.estimators.setdefault(key, est)
        return self.estimators[key]

    async def observe(self, model: str, estimated: int, reported: int) -> None:
        est = await self.for_model(model)
        est.observe(estimated, reported)
        # written while it is learning (a one-shot `cozy run` keeps its sample), then at
        # most once a minute: on a server this was a disk write on the event loop for
        # every request (~0.2 ms of each request's 4 ms of CPU, bench/bench_server.py)
        now = time.monotonic()
        key = family(model)
        if est.samples > PERSIST_WHILE_LEARNING and now - self._saved.get(key, -1e9) < 60:
            return
        self._saved[key] = now
        if self.cache is not None:
            # calibration is best effort; never fail a turn on it
            with contextlib.suppress(Exception):
                await self.cache.set(
                    "tokens",
                    family(model),
                    {"factor": est.factor, "samples": est.samples},
                    ttl=None,
                )


class ContextWindows:
    """Windows per model; what a provider reports is kept a day in the L2 cache (if
    given), so a one-shot `cozy run` does not ask the server again before its answer."""

    L2_TTL = 86400.0

    def __init__(
        self, overrides: dict[str, int] | None = None, cache: L2Cache | None = None
    ) -> None:
        self.overrides = dict(overrides or {})
        self.l2 = cache
        self._cache: dict[tuple[str, str], tuple[int, str]] = {}

    async def resolve(self, engine: AIEngine, provider: str, model: str) -> tuple[int, str]:
        """(window, where it came from)."""
        key = (provider, model)
        if key in self._cache:
            return self._cache[key]
        for name in (f"{provider}:{model}", model):
            if name in self.overrides:
                found = (int(self.overrides[name]), "engines.yaml")
                break
        else:
            where = getattr(engine, "host", None) or getattr(engine, "base_url", None) or ""
            l2_key = f"{provider}:{where}:{model}"
            reported = await self._l2_get(l2_key)
            try:
                if reported is None:
                    reported = await engine.context_window(model)
                    # "the server does not say" is remembered too (as 0), so a one-shot
                    # run against a server without metadata does not ask every time
                    await self._l2_set(l2_key, reported or 0)
            except Exception:  # provider metadata is a hint; never fail a turn on it
                reported = None
            if reported:
                found = (reported, "provider")
            elif (known := known_window(model)) is not None:
                found = (known, "known models")
            else:
                found = (DEFAULT_WINDOW, "default")
        self._cache[key] = found
        return found

    async def _l2_get(self, key: str) -> int | None:
        if self.l2 is None:
            return None
        with contextlib.suppress(Exception):  # a cache problem is never a turn's problem
            value = await self.l2.get("windows", key)
            return value if isinstance(value, int) and value >= 0 else None
        return None

    async def _l2_set(self, key: str, window: int) -> None:
        if self.l2 is not None:
            with contextlib.suppress(Exception):
                await self.l2.set("windows", key, int(window), ttl=self.L2_TTL)
