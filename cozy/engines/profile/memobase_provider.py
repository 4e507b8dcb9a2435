"""`profile.memobase`: the user profile kept by a Memobase server (extra `memobase`).

A cozy user maps to a Memobase user with a stable UUID (uuid5 of the cozy id),
created on first write. Saved chat turns are inserted as chat blobs by a durable
job; the buffer is flushed (Memobase then extracts the profile with its LLM) once
`min_chars` of new text have accumulated or the user has been quiet for
`idle_seconds` (see memobase_jobs.py). `get_profile` maps Memobase topics and
sub-topics to cozy's topic/slot profile; `set_slot` / `delete_slot` write back.

Options (engines.yaml `profile:`):

- `url`: the Memobase server (default `$MEMOBASE_URL`, else http://localhost:8019)
- `api_key`: its key (default `$MEMOBASE_API_KEY`; write `${MEMOBASE_API_KEY}` in YAML)
- `min_chars` (default 400), `idle_seconds` (default 120): the flush rules
- `max_tokens`: size of the profile put in the prompt (default 300)
- `prefer_topics`, `only_topics`: passed to Memobase when reading the profile
- `cache_ttl`: seconds a read profile is reused (default 1800; a flush or a write
  through cozy invalidates it)
- `request_timeout`: seconds per HTTP request (default 10)
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import SecretStr

from cozy.core.errors import (
    AuthError,
    ConfigError,
    CozyError,
    EngineError,
    MissingExtraError,
    NotFoundError,
)
from cozy.core.types import Message, Profile, ProfileSlot
from cozy.engines.base import EngineContext, EngineOptions, Health, ProfileEngine

NAMESPACE = uuid.UUID("6f1c9a52-3d0e-5c43-9a7e-0c0c02a1b5e1")
DEFAULT_URL = "http://localhost:8019"


def memobase_user_id(user_id: str) -> str:
    """The Memobase user for a cozy user: Memobase wants UUIDs, cozy ids are free text."""
    return str(uuid.uuid5(NAMESPACE, f"cozy:{user_id}"))


class MemobaseOptions(EngineOptions):
    url: str | None = None  # default: MEMOBASE_URL, else DEFAULT_URL
    api_key: SecretStr | None = None  # default: MEMOBASE_API_KEY
    min_chars: int = 400
    idle_seconds: float = 120
    max_tokens: int = 300
    prefer_topics: list[str] | None = None
    only_topics: list[str] | None = None
    cache_ttl: float = 1800
    request_timeout: float = 10


class MemobaseProfile(ProfileEngine):
    Options = MemobaseOptions
    provider_name: ClassVar[str] = "memobase"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = MemobaseOptions.of(self.options, "profile")
        self.url = str(o.url or os.environ.get("MEMOBASE_URL") or DEFAULT_URL).rstrip("/")
        key = (o.api_key.get_secret_value() if o.api_key else None) or os.environ.get(
            "MEMOBASE_API_KEY"
        )
        self.api_key: str | None = str(key) if key else None
        self.min_chars = o.min_chars
        self.idle_seconds = o.idle_seconds
        self.max_tokens = o.max_tokens
        self.prefer_topics: list[str] | None = o.prefer_topics
        self.only_topics: list[str] | None = o.only_topics
        self.cache_ttl = o.cache_ttl
        self.request_timeout = o.request_timeout
        self._client: Any = None
        self._known_users: set[str] = set()
        self._cache: dict[tuple[str, int], tuple[float, Profile]] = {}

    # --- the client -------------------------------------------------------------
    def client(self) -> Any:
        if self._client is None:
            if not self.api_key:
                raise ConfigError(
                    "profile.memobase needs an API key",
                    hint="set MEMOBASE_API_KEY, or `api_key: ${MEMOBASE_API_KEY}` under "
                    "`profile:` in engines.yaml",
                )
            try:
                from memobase import AsyncMemoBaseClient
            except ImportError as exc:
                raise MissingExtraError("memobase", "the memobase profile provider") from exc
            import httpx

            client = AsyncMemoBaseClient(project_url=self.url, api_key=self.api_key)
            client._client.timeout = httpx.Timeout(self.request_timeout)
            self._client = client
        return self._client

    async def _call(self, what: str, coro_fn: Any, *args: Any, **kwargs: Any) -> Any:
        """Run one client call; vendor exceptions become cozy errors here, at the edge."""
        try:
            return await coro_fn(*args, **kwargs)
        except CozyError:
            raise
        except Exception as exc:
            raise translate(exc, self.url, what) from exc

    async def user(self, user_id: str, *, create: bool) -> Any:
        from memobase.error import ServerError

        mid = memobase_user_id(user_id)
        client = self.client()
        if not create or mid in self._known_users:
            return await client.get_user(mid, no_get=True)
        try:
            user = await self._call("get user", client.get_user, mid)
        except EngineError as exc:
            if not isinstance(exc.__cause__, ServerError):
                raise
            await self._call("create user", client.add_user, {"cozy_user": user_id}, mid)
            user = await client.get_user(mid, no_get=True)
        self._known_users.add(mid)
        return user

    async def close(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            await client.close()

    async def health_check(self) -> Health:
        try:
            client = self.client()
            await self._call("healthcheck", _strict_ping, client)
        except CozyError as exc:
            return Health(ok=False, detail=exc.message, fix=exc.hint or "")
        return Health(ok=True, detail=f"memobase at {self.url}")

    # --- the profile interface ------------------------------------------------------
    async def get_profile(self, user_id: str, *, max_tokens: int = 300) -> Profile:
        budget = max_tokens or self.max_tokens
        hit = self._cache.get((user_id, budget))
        if hit is not None and hit[0] > time.monotonic():
            return hit[1]
        user = await self.user(user_id, create=False)
        try:
            items = await self._call(
                "read profile",
                user.profile,
                max_token_size=budget,
                prefer_topics=self.prefer_topics,
                only_topics=self.only_topics,
            )
        except EngineError as exc:
            if "not found" in str(exc).lower():
                return Profile()  # nobody told Memobase about this user yet
            raise
        slots = [
            ProfileSlot(
                topic=str(p.topic),
                slot=str(p.sub_topic),
                value=str(p.content),
                updated_at=_iso(p.updated_at),
            )
            for p in items
        ]
        summary = "; ".join(f"{s.topic}.{s.slot}: {s.value}" for s in slots)
        profile = Profile(summary=summary, slots=slots)
        self._cache[(user_id, budget)] = (time.monotonic() + self.cache_ttl, profile)
        return profile

    def invalidate(self, user_id: str) -> None:
        for key in [k for k in self._cache if k[0] == user_id]:
            del self._cache[key]

    async def update_profile(
        self, user_id: str, messages: Sequence[Message], *, source_ids: Sequence[str] = ()
    ) -> None:
        """Insert the turn as a chat blob, then flush the buffer now (an explicit update)."""
        await self.insert_turn(user_id, messages, source_ids=source_ids)
        await self.flush(user_id)

    async def insert_turn(
        self, user_id: str, messages: Sequence[Message], *, source_ids: Sequence[str] = ()
    ) -> str | None:
        from memobase import ChatBlob

        chat = [
            {"role": m.role, "content": m.content}
            for m in messages
            if m.role in ("user", "assistant") and m.content.strip()
        ]
        if not chat:
            return None
        user = await self.user(user_id, create=True)
        blob = ChatBlob(messages=chat, fields={"source_ids": ",".join(source_ids)})
        return str(await self._call("insert chat", user.insert, blob))

    async def flush(self, user_id: str) -> None:
        user = await self.user(user_id, create=True)
        await self._call("flush buffer", user.flush, sync=True)
        self.invalidate(user_id)

    async def set_slot(self, user_id: str, topic: str, slot: str, value: str) -> str:
        """Write one topic/slot back to Memobase (updates the entry if it exists)."""
        user = await self.user(user_id, create=True)
        items = await self._call("read profile", user.profile, max_token_size=100_000)
        for p in items:
            if p.topic == topic and p.sub_topic == slot:
                await self._call(
                    "update profile", user.update_profile, str(p.id), value, topic, slot
                )
                self.invalidate(user_id)
                return str(p.id)
        pid = await self._call("add profile", user.add_profile, value, topic, slot)
        self.invalidate(user_id)
        return str(pid)

    async def delete_slot(self, user_id: str, topic: str, slot: str) -> None:
        user = await self.user(user_id, create=True)
        items = await self._call("read profile", user.profile, max_token_size=100_000)
        found = [p for p in items if p.topic == topic and p.sub_topic == slot]
        if not found:
            raise NotFoundError(f"no profile entry {topic}.{slot}", hint="see `cozy profile show`")
        for p in found:
            await self._call("delete profile", user.delete_profile, str(p.id))
        self.invalidate(user_id)

    def background(self) -> Any:
        from cozy.engines.profile.memobase_jobs import MemobaseJobs

        return MemobaseJobs(self)


async def _strict_ping(client: Any) -> None:
    """The client's own ping() hides why it failed: ask the endpoint ourselves."""
    from memobase.network import unpack_response

    unpack_response(await client.client.get("/healthcheck"))


def _iso(value: Any) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else (str(value) if value else None)


def translate(exc: BaseException, url: str, what: str) -> CozyError:
    import httpx
    from memobase.error import ServerError

    if isinstance(exc, httpx.HTTPStatusError):
        status = exc.response.status_code
        if status in (401, 403):
            return AuthError(
                f"memobase at {url} rejected the API key ({status})",
                hint="set MEMOBASE_API_KEY (or `profile.api_key`) to the server's key",
            )
        return EngineError(f"memobase {what} failed: HTTP {status}", hint=f"check the server {url}")
    if isinstance(exc, httpx.TimeoutException):
        return EngineError(f"memobase {what} timed out", hint=f"check the server {url}")
    if isinstance(exc, httpx.TransportError | OSError):
        return EngineError(
            f"memobase at {url} is unreachable ({type(exc).__name__})",
            hint="start the Memobase server or fix `profile.url` in engines.yaml",
        )
    if isinstance(exc, ServerError):
        return EngineError(f"memobase {what}: {exc}", hint=f"see the server log at {url}")
    return EngineError(f"memobase {what} failed: {type(exc).__name__}: {exc}")
