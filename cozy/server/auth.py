"""Authentication: API keys (stored hashed) and JWT Bearer tokens (HS256 / RS256).

`Authorization: Bearer sk-cozy-…` is an API key; any other bearer value is read as
a JWT (`sub` = user id, `role` = user|admin, `exp` required). Verified callers are
cached for a few seconds so a request costs no database read on the hot path
(a revoked key stops working within `COZY_SERVER_AUTH_CACHE_SECONDS`).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from typing import Any, Literal

from cozy.core.errors import AuthError, PermissionDenied
from cozy.core.types import Caller
from cozy.server.config import ServerSettings
from cozy.settings import Settings
from cozy.storage.api_keys import KEY_PREFIX, ApiKeys
from cozy.storage.cache import TTLCache
from cozy.storage.store import Store
from cozy.storage.users import BudgetOverride, Users

Role = Literal["user", "admin"]

_HOW = "create a key with `cozy keys create --user NAME` or a token with `cozy token issue`"


@dataclass(slots=True, frozen=True)
class Principal:
    user_id: str
    role: Role
    key_id: str | None = None
    # the user's stored budget as read with their status (cached with the principal),
    # and when it was read (time.monotonic), so the limiter keeps the newest read
    budget: BudgetOverride | None = None
    read_at: float = 0.0

    @property
    def limit_scopes(self) -> tuple[str, ...]:
        """Limits and budgets apply per key and per user (all their keys together)."""
        user = f"user:{self.user_id}"
        return (f"key:{self.key_id}", user) if self.key_id else (user,)

    def caller(self) -> Caller:
        return Caller(user_id=self.user_id, role=self.role, face="server")


class Authenticator:
    def __init__(self, store: Store, cfg: ServerSettings, settings: Settings) -> None:
        self.keys = ApiKeys(store)
        self.users = Users(store)
        self.cfg = cfg
        self.settings = settings
        self.local = Principal(settings.user, "admin")
        self._cache: TTLCache[Principal] = TTLCache(cfg.auth_cache_seconds, maxsize=4096)
        self._verify_key: str | None = None

    async def authenticate(self, authorization: str | None) -> Principal:
        if self.cfg.no_auth:
            return self.local
        if not authorization:
            raise AuthError("no API key was sent", hint=f"send `Authorization: Bearer KEY`; {_HOW}")
        scheme, _, token = authorization.strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise AuthError(
                "the Authorization header must be `Bearer KEY`", hint=f"{_HOW}, then send it"
            )
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()
        cached = self._cache.get(digest)
        if cached is not None:
            return cached
        if token.startswith(KEY_PREFIX):
            principal = await self._api_key(token)
        else:
            principal = self._jwt(token)
        principal = await self._active(principal)
        self._cache.set(digest, principal)
        return principal

    async def _active(self, principal: Principal) -> Principal:
        """A key or token acts for a user who exists and is not disabled. The same read
        brings the user's stored budget, carried to the limiter with the principal."""
        read_at = time.monotonic()
        user = await self.users.get(principal.user_id)
        if user is None:
            raise AuthError(
                f"the token names a user '{principal.user_id}' this server does not know",
                hint=f"issue tokens with `cozy token issue --user NAME`; {_HOW}",
            )
        if not user.active:
            raise AuthError(
                f"the user '{principal.user_id}' is disabled",
                hint=f"an admin can run `cozy users enable {principal.user_id}`",
            )
        return replace(principal, budget=user.budget, read_at=read_at)

    async def _api_key(self, token: str) -> Principal:
        row = await self.keys.verify(token)
        if row is None:
            raise AuthError("the API key is not valid (unknown, revoked or expired)", hint=_HOW)
        role: Role = "admin" if row.role == "admin" else "user"
        return Principal(row.user_id, role, row.id)

    def _jwt(self, token: str) -> Principal:
        import jwt

        if self._verify_key is None:
            self._verify_key = self.cfg.verify_key(self.settings)
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._verify_key,
                algorithms=[self.cfg.jwt_algorithm],
                issuer=self.cfg.jwt_issuer,
                audience=self.cfg.jwt_audience,
                options={"require": ["exp", "sub"], "verify_aud": bool(self.cfg.jwt_audience)},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError(
                "the token has expired", hint="issue a new one with `cozy token issue --user NAME`"
            ) from None
        except jwt.InvalidTokenError as exc:
            raise AuthError(f"the bearer token is not valid: {exc}", hint=_HOW) from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub.strip() or len(sub) > 64:
            raise AuthError("the token's `sub` claim must name a user", hint=_HOW)
        role: Role = "admin" if claims.get("role") == "admin" else "user"
        return Principal(sub, role)


def require_admin(principal: Principal) -> None:
    if principal.role != "admin":
        raise PermissionDenied(
            "this needs the admin role",
            hint="use a key made with `cozy keys create --user NAME --role admin`",
        )


def issue_token(
    settings: Settings, cfg: ServerSettings, user_id: str, *, role: str, ttl_seconds: float
) -> str:
    import jwt

    now = int(time.time())
    claims: dict[str, Any] = {
        "sub": user_id,
        "role": role,
        "iat": now,
        "exp": now + int(ttl_seconds),
        "iss": cfg.jwt_issuer,
    }
    if cfg.jwt_audience:
        claims["aud"] = cfg.jwt_audience
    return jwt.encode(claims, cfg.signing_key(settings), algorithm=cfg.jwt_algorithm)
