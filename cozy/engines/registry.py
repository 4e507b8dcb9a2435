"""Engine registry and factory.

Providers are found through the entry-point group `cozy.engines`; each entry is
named `<kind>.<provider>` (e.g. `ai.ollama`) and points at the provider class.
Built-ins are declared in cozy's own pyproject exactly as a plugin would declare
them. Classes are imported lazily, on first use, and once. Tests and embedders can
also `register()` a class directly.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, distribution, entry_points
from typing import Any

from cozy.core.errors import ConfigError, EngineError
from cozy.engines.base import ENGINE_API_VERSION, ENGINE_KINDS, BaseEngine, EngineContext

ENTRY_POINT_GROUP = "cozy.engines"


class EngineRegistry:
    """Maps (kind, provider name) to a provider class."""

    def __init__(self) -> None:
        self._targets: dict[tuple[str, str], str] = {}
        self._classes: dict[tuple[str, str], type[BaseEngine]] = {}
        self._scanned = False
        self._own_scanned = False

    def _scan(self) -> None:
        if self._scanned:
            return
        self._scan_own()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            kind, _, name = ep.name.partition(".")
            if kind and name:
                self._targets.setdefault((kind, name), ep.value)
        self._scanned = True

    def _scan_own(self) -> None:
        """cozy's own entry points only: reading one distribution's metadata instead of
        every installed one's (~15 ms of a one-shot run) finds the built-ins."""
        if self._own_scanned:
            return
        self._own_scanned = True
        try:
            eps = distribution("cozy").entry_points
        except PackageNotFoundError:  # running from a source tree: the full scan finds them
            return
        for ep in eps:
            if ep.group == ENTRY_POINT_GROUP:
                kind, _, name = ep.name.partition(".")
                if kind and name:
                    self._targets.setdefault((kind, name), ep.value)

    def register(self, kind: str, name: str, cls: type[BaseEngine]) -> None:
        self._classes[(kind, name)] = cls

    def has(self, kind: str, name: str) -> bool:
        """Whether a provider exists, reading cozy's own entry points first (cheap)."""
        if (kind, name) in self._classes:
            return True
        self._scan_own()
        if (kind, name) not in self._targets:
            self._scan()
        return (kind, name) in self._targets

    def providers(self, kind: str) -> list[str]:
        self._scan()
        names = {n for (k, n) in self._targets if k == kind}
        names |= {n for (k, n) in self._classes if k == kind}
        return sorted(names)

    def get(self, kind: str, name: str) -> type[BaseEngine]:
        key = (kind, name)
        if key in self._classes:
            return self._classes[key]
        self._scan_own()
        if key not in self._targets:
            self._scan()
        target = self._targets.get(key)
        if target is None:
            known = ", ".join(self.providers(kind)) or "none"
            raise ConfigError(
                f"unknown {kind} provider '{name}'",
                hint=f"known {kind} providers: {known}",
            )
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ImportError as exc:
            raise EngineError(
                f"the {kind} provider '{name}' could not be imported ({exc})",
                hint="reinstall cozy with `./install.sh`, or install the provider's extra",
            ) from exc
        cls: type[BaseEngine] = getattr(module, attr)
        self._check(kind, name, cls)
        self._classes[key] = cls
        return cls

    @staticmethod
    def _check(kind: str, name: str, cls: Any) -> None:
        base = ENGINE_KINDS.get(kind)
        if base is None or not (isinstance(cls, type) and issubclass(cls, base)):
            raise EngineError(f"provider '{kind}.{name}' does not implement the {kind} engine")
        version = getattr(cls, "api_version", None)
        if version != ENGINE_API_VERSION:
            raise EngineError(
                f"provider '{kind}.{name}' speaks engine API {version!r}, "
                f"cozy speaks {ENGINE_API_VERSION!r}",
                hint="upgrade the provider package or cozy so the versions match",
            )


registry = EngineRegistry()


class EngineFactory:
    """Builds engine instances from engines.yaml sections."""

    def __init__(self, reg: EngineRegistry | None = None) -> None:
        self.registry = reg or registry

    def create(
        self,
        kind: str,
        provider: str,
        options: dict[str, Any],
        ctx: EngineContext | None = None,
    ) -> BaseEngine:
        cls = self.registry.get(kind, provider)
        return cls(options, ctx)
