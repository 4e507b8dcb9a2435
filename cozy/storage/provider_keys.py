"""Model-provider API keys (`cozy keys set openai`), in one JSON file of mode 0600.

Kept apart from engines.yaml so the config can be shared or committed without a
secret in it; never printed back (`cozy keys providers` says only whether one is set).
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

from cozy.core.errors import ConfigError


class ProviderKeys:
    """`{provider: key}` in `path`; written atomically, readable by the owner only."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _read(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as exc:
            raise ConfigError(
                f"cannot read the provider keys in {self.path} ({exc})",
                hint=f"fix or remove {self.path}, then `cozy keys set PROVIDER` again",
            ) from exc
        if not isinstance(data, dict):
            return {}
        return {str(k): str(v) for k, v in data.items() if isinstance(v, str) and v}

    def get(self, provider: str) -> str | None:
        if not self.path.exists():  # the common case: no stat-and-parse on every run
            return None
        return self._read().get(provider)

    def names(self) -> list[str]:
        return sorted(self._read())

    def set(self, provider: str, key: str) -> None:
        keys = self._read()
        keys[provider] = key
        self._write(keys)

    def remove(self, provider: str) -> bool:
        keys = self._read()
        if keys.pop(provider, None) is None:
            return False
        self._write(keys)
        return True

    def _write(self, keys: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".keys-", dir=self.path.parent)  # mode 0600
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                json.dump(keys, fh, indent=2)
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
