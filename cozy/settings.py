"""One typed settings model.

Precedence, lowest first: defaults < config files (the packaged engines.yaml, then
the user's engines.yaml in the config dir, or the file named by `--config` /
`COZY_CONFIG`) < environment `COZY_*` < CLI flags (applied by the CLI through
`Settings.model_copy(update=...)`).

`COZY_HOME` relocates all data and user config (tests use a temp dir).
"""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

APP_NAME = "cozy"


def _package_data_dir() -> Path:
    """Where the shipped engines.yaml and profiles/ are.

    In a wheel they are force-included under cozy/_data; in an editable checkout
    they sit at the repository root beside the package.
    """
    pkg = Path(__file__).resolve().parent
    data = pkg / "_data"
    return data if data.is_dir() else pkg.parent


class Settings(BaseSettings):
    """Process-wide settings. Engines' own options live in `EnginesConfig`."""

    model_config = SettingsConfigDict(env_prefix="COZY_", extra="ignore")

    home: Path | None = Field(default=None, description="data + config root (COZY_HOME)")
    config: Path | None = Field(default=None, description="engines.yaml to use (COZY_CONFIG)")
    database_url: str | None = None
    redis_url: str | None = None
    model: str | None = Field(default=None, description="provider:model or alias for this run")
    personality: str = "assistant"
    user: str = "local"
    log_level: str = "WARNING"
    log_format: Literal["text", "json"] = "text"
    api_key: SecretStr | None = None
    db_busy_timeout_ms: int = 5000
    # `cozy run` starts a detached `cozy jobs run --background` for the jobs its turn
    # queued (memory extraction, profile updates); COZY_BACKGROUND_JOBS=0: leave them
    background_jobs: bool = True
    # a search that cannot wait for the embedder starts loading it for the next search;
    # `cozy run` answers once and exits, so it sets this off: its searches use keywords
    # (as they would anyway: the model loads in ~1 s, the search waits 0.3 s) and the
    # process does not sit after the answer, burning ~1-2 s CPU, until the load ends
    embed_cold_start: bool = True
    # Postgres: a hung (not refused) server answers 503 within these, never hangs a request
    db_connect_timeout: float = Field(default=5.0, gt=0)  # s to connect or wait for the pool
    db_statement_timeout: float = Field(default=15.0, gt=0)  # s per statement
    # server mode pools (brief: database 20 + 10 overflow, Redis 50)
    db_pool_size: int = 20
    db_max_overflow: int = 10
    redis_pool_size: int = 50

    # --- derived locations -------------------------------------------------
    @cached_property
    def data_dir(self) -> Path:
        if self.home is not None:
            return self.home.expanduser()
        from platformdirs import user_data_dir

        return Path(user_data_dir(APP_NAME))

    @cached_property
    def config_dir(self) -> Path:
        if self.home is not None:
            return self.home.expanduser()
        from platformdirs import user_config_dir

        return Path(user_config_dir(APP_NAME))

    @property
    def packaged_engines_file(self) -> Path:
        return _package_data_dir() / "engines.yaml"

    @property
    def packaged_profiles_dir(self) -> Path:
        return _package_data_dir() / "profiles"

    @property
    def user_engines_file(self) -> Path:
        return self.config_dir / "engines.yaml"

    @property
    def user_profiles_dir(self) -> Path:
        return self.config_dir / "profiles"

    @property
    def engines_files(self) -> list[Path]:
        """Config files in the order they are merged (later wins)."""
        if self.config is not None:
            return [self.packaged_engines_file, self.config.expanduser()]
        files = [self.packaged_engines_file]
        if self.user_engines_file.is_file():
            files.append(self.user_engines_file)
        return files

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'cozy.db'}"

    @property
    def cache_dir(self) -> Path:
        return self.data_dir / "cache"

    def public_dict(self) -> dict[str, Any]:
        """Settings for `cozy config show`, secrets redacted."""
        out = self.model_dump(mode="json")
        out["api_key"] = "***" if self.api_key else None
        out["database_url"] = _redact_url(self.database_url) if self.database_url else None
        out["redis_url"] = _redact_url(self.redis_url) if self.redis_url else None
        out["data_dir"] = str(self.data_dir)
        out["config_dir"] = str(self.config_dir)
        out["database"] = _redact_url(self.db_url)
        out["engines_files"] = [str(p) for p in self.engines_files]
        return out


def _redact_url(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        creds, host = rest.rsplit("@", 1)
        user = creds.split(":", 1)[0]
        return f"{scheme}://{user}:***@{host}"
    return url


def load_settings(**overrides: Any) -> Settings:
    """Build settings from env, then apply CLI overrides that are not None."""
    settings = Settings()
    clean = {k: v for k, v in overrides.items() if v is not None}
    if clean:
        settings = settings.model_copy(update=clean)
    return settings
