"""Server settings: auth, limits, observability. Env `COZY_SERVER_*`, then CLI flags.

The JWT secret, when none is configured, is generated once into the data dir
(`jwt_secret`, mode 0600) so `cozy token issue` and `cozy serve` agree locally.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from cozy.core.errors import ConfigError
from cozy.server.ratelimit import Budget, Limits
from cozy.settings import Settings


class BudgetIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    tokens_day: int | None = Field(default=None, gt=0)
    tokens_month: int | None = Field(default=None, gt=0)
    usd_day: float | None = Field(default=None, gt=0)
    usd_month: float | None = Field(default=None, gt=0)


class UserBudgetIn(BaseModel):
    """One user's budget: each field set replaces the default user budget's, 0 turns
    that budget off for the user; fields left out keep the default."""

    model_config = ConfigDict(extra="forbid")

    tokens_day: int | None = Field(default=None, ge=0)
    tokens_month: int | None = Field(default=None, ge=0)
    usd_day: float | None = Field(default=None, ge=0)
    usd_month: float | None = Field(default=None, ge=0)


class Budgets(BaseModel):
    model_config = ConfigDict(extra="forbid")

    user: BudgetIn = Field(default_factory=BudgetIn)
    key: BudgetIn = Field(default_factory=BudgetIn)
    users: dict[str, UserBudgetIn] = Field(default_factory=dict)  # per user id


class ServerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="COZY_SERVER_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    no_auth: bool = False
    jwt_secret: SecretStr | None = None
    jwt_algorithm: Literal["HS256", "RS256"] = "HS256"
    jwt_public_key: Path | None = Field(default=None, description="PEM file for RS256")
    jwt_private_key: Path | None = Field(default=None, description="PEM file to issue RS256")
    jwt_issuer: str = "cozy"
    jwt_audience: str | None = None
    rate_limit_rpm: int = Field(default=600, ge=0, description="requests/min per key (0 = off)")
    rate_limit_tpm: int = Field(default=200_000, ge=0, description="tokens/min per key")
    ip_rate_limit_rpm: int = Field(default=1200, ge=0, description="requests/min per IP")
    user_rate_limit_rpm: int | None = Field(
        default=None, ge=0, description="requests/min per user, all keys (default: per key)"
    )
    user_rate_limit_tpm: int | None = Field(
        default=None, ge=0, description="tokens/min per user, all keys (default: per key)"
    )
    budgets: Budgets = Field(
        default_factory=lambda: Budgets(),
        description='JSON: {"user": {"tokens_day": N, "tokens_month": N, "usd_day": X, '
        '"usd_month": X}, "key": {...}, "users": {"alice": {"tokens_day": N}}}; "users" '
        "overrides the user budget for the users it names (0: none); a budget stored with "
        "`cozy users set-budget` wins over both; spend needs ai.prices in engines.yaml",
    )
    max_body_bytes: int = Field(default=4 * 1024 * 1024, gt=0)
    # /v1/embeddings: bounded work per request (OpenAI allows 2048 inputs, 300k tokens)
    embed_max_inputs: int = Field(default=2048, ge=1)
    embed_max_tokens: int = Field(default=300_000, ge=1)
    embed_timeout: float = Field(default=60.0, gt=0)
    speech_timeout: float = Field(
        default=120.0, gt=0, description="seconds a non-streamed /v1/audio/tts may synthesise"
    )
    otel_exporter: Literal["none", "console", "otlp"] = "none"
    otel_endpoint: str | None = None
    graceful_timeout: float = 10.0
    auth_cache_seconds: float = 5.0

    def limits(self) -> Limits:
        def budget(b: BudgetIn) -> Budget:
            return Budget(b.tokens_day, b.tokens_month, b.usd_day, b.usd_month)

        default = self.budgets.user

        def override(o: UserBudgetIn) -> Budget:
            def pick(name: str) -> float | None:
                value = getattr(o, name)
                if value is None:
                    return getattr(default, name)  # type: ignore[no-any-return]
                return value or None  # 0: no such budget for this user

            days, months = pick("tokens_day"), pick("tokens_month")
            return Budget(
                int(days) if days else None,
                int(months) if months else None,
                pick("usd_day"),
                pick("usd_month"),
            )

        return Limits(
            self.rate_limit_rpm,
            self.rate_limit_tpm,
            self.ip_rate_limit_rpm,
            self.user_rate_limit_rpm,
            self.user_rate_limit_tpm,
            budget(self.budgets.key),
            budget(self.budgets.user),
            {user: override(o) for user, o in self.budgets.users.items()},
        )

    def check_bind(self) -> None:
        if self.no_auth and not is_loopback(self.host):
            raise ConfigError(
                f"--no-auth is only allowed on a loopback address, not {self.host}",
                hint="bind to 127.0.0.1 or drop --no-auth and create a key with "
                "`cozy keys create --user NAME`",
            )

    def hs_secret(self, settings: Settings) -> str:
        if self.jwt_secret is not None:
            return self.jwt_secret.get_secret_value()
        path = settings.data_dir / "jwt_secret"
        if path.is_file():
            return path.read_text(encoding="utf-8").strip()
        path.parent.mkdir(parents=True, exist_ok=True)
        value = secrets.token_urlsafe(48)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(value)
        return value

    def verify_key(self, settings: Settings) -> str:
        """The key that verifies tokens: HS256 secret or RS256 public key PEM."""
        if self.jwt_algorithm == "HS256":
            return self.hs_secret(settings)
        if self.jwt_public_key is None:
            raise ConfigError(
                "RS256 needs a public key",
                hint="set COZY_SERVER_JWT_PUBLIC_KEY=/path/to/public.pem",
            )
        return _read_pem(self.jwt_public_key, "COZY_SERVER_JWT_PUBLIC_KEY")

    def signing_key(self, settings: Settings) -> str:
        if self.jwt_algorithm == "HS256":
            return self.hs_secret(settings)
        if self.jwt_private_key is None:
            raise ConfigError(
                "issuing RS256 tokens needs the private key",
                hint="set COZY_SERVER_JWT_PRIVATE_KEY=/path/to/private.pem",
            )
        return _read_pem(self.jwt_private_key, "COZY_SERVER_JWT_PRIVATE_KEY")


def _read_pem(path: Path, var: str) -> str:
    try:
        return path.expanduser().read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read {path}: {exc.strerror}", hint=f"fix {var}") from exc


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
