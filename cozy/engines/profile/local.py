"""`profile.local`: a topic -> slot profile in SQL, updated by a buffered LLM job.

Options (engines.yaml `profile:`):

- `topics`: {topic: [usual slots]} (default: basic_info, work, interests, preferences, …)
- `model`: the model for extraction (default: the AI default)
- `min_chars`: run the update once this much new user text has accumulated (default 400)
- `idle_seconds`: …or once the user has been quiet this long (default 120)
- `max_tokens`: default size of the prompt summary (default 300)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Sequence
from typing import Any, ClassVar

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from cozy.core.errors import ConfigError, NotFoundError, UsageError
from cozy.core.types import Message, Profile, ProfileSlot
from cozy.engines.base import EngineContext, EngineOptions, ProfileEngine
from cozy.engines.profile.extract import ProfileExtractionFailed, extract
from cozy.storage.schema import new_id, utcnow
from cozy.storage.store import Store
from cozy.storage.tables.profile import profile_cursors, profile_history, profile_slots
from cozy.storage.worker import PermanentJobError

DEFAULT_TOPICS: dict[str, list[str]] = {
    "basic_info": ["name", "age", "location", "language", "pronouns"],
    "work": ["title", "company", "field", "skills"],
    "education": ["school", "degree", "major"],
    "family": ["partner", "children", "parents", "siblings", "pets"],
    "interests": ["music", "books", "movies", "sports", "hobbies"],
    "preferences": ["food", "drinks", "communication_style", "tools"],
    "health": ["diet", "allergies", "exercise"],
    "goals": ["short_term", "long_term"],
}

_SLOT_RE = re.compile(r"[^a-z0-9_]+")


def slot_name(text: str) -> str:
    return _SLOT_RE.sub("_", text.strip().lower()).strip("_")[:64]


def split_key(key: str) -> tuple[str, str]:
    topic, dot, slot = key.partition(".")
    topic, slot = slot_name(topic), slot_name(slot)
    if not dot or not topic or not slot:
        raise UsageError(f"'{key}' is not a topic.slot key", hint="write it like `basic_info.name`")
    return topic, slot


def _history(
    user_id: str,
    topic: str,
    slot: str,
    action: str,
    old: str | None,
    new: str | None,
    reason: str,
    sources: Sequence[str],
    now: Any,
) -> Any:
    """The insert of one profile_history row."""
    return sa.insert(profile_history).values(
        id=new_id("phi"), user_id=user_id, topic=topic, slot=slot, action=action, old_value=old,
        new_value=new, reason=reason, source_message_ids=list(sources), created_at=now,
    )  # fmt: skip


class LocalProfileOptions(EngineOptions):
    topics: Any = None  # {topic: [slot, ...]}; default DEFAULT_TOPICS (checked below)
    model: str | None = None  # extraction model (provider:model); default the AI default
    min_chars: int = 400  # new user text that triggers an update...
    idle_seconds: float = 120  # ...or this long after the last turn
    max_tokens: int = 300  # size of the profile summary in the prompt


class LocalProfile(ProfileEngine):
    Options = LocalProfileOptions
    provider_name: ClassVar[str] = "local"

    def __init__(
        self, options: dict[str, Any] | None = None, ctx: EngineContext | None = None
    ) -> None:
        super().__init__(options, ctx)
        o = LocalProfileOptions.of(self.options, "profile")
        topics = DEFAULT_TOPICS if o.topics is None else o.topics
        if not isinstance(topics, dict) or not all(isinstance(v, list) for v in topics.values()):
            raise ConfigError(
                "profile.topics must map each topic to a list of slot names",
                hint="e.g. `topics: {work: [title, company]}` under `profile:` in engines.yaml",
            )
        self.topics: dict[str, list[str]] = {
            slot_name(t): [slot_name(s) for s in v] for t, v in topics.items()
        }
        self.model: str | None = o.model
        self.min_chars = o.min_chars
        self.idle_seconds = o.idle_seconds
        self.summary_tokens = o.max_tokens
        store = self.ctx.store
        if not isinstance(store, Store):
            raise ConfigError("profile.local needs the store", hint="open it through the Runtime")
        self.store = store

    # --- reads ------------------------------------------------------------------
    async def slots(self, user_id: str, *, include_removed: bool = False) -> list[dict[str, Any]]:
        stmt = sa.select(profile_slots).where(profile_slots.c.user_id == user_id)
        if not include_removed:
            stmt = stmt.where(profile_slots.c.deleted_at.is_(None))
        rows = [dict(r._mapping) for r in await self.store.read(stmt)]
        order = {t: i for i, t in enumerate(self.topics)}
        rows.sort(key=lambda r: (order.get(r["topic"], 99), r["topic"], r["slot"]))
        return rows

    async def get_profile(self, user_id: str, *, max_tokens: int | None = None) -> Profile:
        budget = max_tokens or self.summary_tokens
        cache = self.ctx.cache
        key = f"{user_id}:{budget}"
        if cache is not None:
            hit = await cache.get("profile", key)
            if isinstance(hit, dict):
                return Profile(hit["summary"], [ProfileSlot(**s) for s in hit["slots"]])
        rows = await self.slots(user_id)
        lines: list[str] = []
        used = 0
        slots: list[ProfileSlot] = []
        for r in rows:
            line = f"{r['topic']}.{r['slot']}: {r['value']}"
            cost = max(1, len(line) // 4)
            if used + cost > budget:
                break
            used += cost
            lines.append(line)
            slots.append(
                ProfileSlot(
                    r["topic"], r["slot"], r["value"], r["confidence"], str(r["updated_at"])
                )
            )
        profile = Profile("\n".join(lines), slots)
        if cache is not None:
            entry = {"summary": profile.summary, "slots": [dataclasses.asdict(s) for s in slots]}
            await cache.set("profile", key, entry)
        return profile

    async def history(self, user_id: str, key: str | None = None) -> list[dict[str, Any]]:
        stmt = sa.select(profile_history).where(profile_history.c.user_id == user_id)
        if key:
            topic, slot = split_key(key)
            stmt = stmt.where(profile_history.c.topic == topic, profile_history.c.slot == slot)
        stmt = stmt.order_by(profile_history.c.created_at, profile_history.c.id)
        return [dict(r._mapping) for r in await self.store.read(stmt)]

    # --- writes -----------------------------------------------------------------
    async def write(self, fn: Any) -> Any:
        result = await self.store.write(fn)
        cache = self.ctx.cache
        if cache is not None:
            await cache.bump("profile")
        return result

    @staticmethod
    async def _set(
        conn: AsyncConnection,
        user_id: str,
        topic: str,
        slot: str,
        value: str,
        *,
        confidence: float,
        reason: str,
        sources: Sequence[str] = (),
    ) -> bool:
        now = utcnow()
        key = (
            profile_slots.c.user_id == user_id,
            profile_slots.c.topic == topic,
            profile_slots.c.slot == slot,
        )
        old = (await conn.execute(sa.select(profile_slots).where(*key))).first()
        if old is not None and old.value == value and old.deleted_at is None:
            return False
        values = {
            "value": value,
            "confidence": confidence,
            "source_message_ids": list(sources),
            "updated_at": now,
            "deleted_at": None,
        }
        if old is None:
            await conn.execute(
                sa.insert(profile_slots).values(
                    user_id=user_id, topic=topic, slot=slot, created_at=now, **values
                )
            )
        else:
            await conn.execute(sa.update(profile_slots).where(*key).values(**values))
        action = "add" if old is None or old.deleted_at is not None else "update"
        previous = None if old is None else old.value
        await conn.execute(
            _history(user_id, topic, slot, action, previous, value, reason, sources, now)
        )
        return True

    async def set_slot(self, user_id: str, key: str, value: str) -> None:
        topic, slot = split_key(key)
        value = " ".join(value.split())
        if not value:
            raise UsageError("the value is empty", hint=f"to remove it: `cozy profile rm {key}`")
        await self.store.ensure_user(user_id)

        async def fn(conn: AsyncConnection) -> None:
            await self._set(
                conn, user_id, topic, slot, value, confidence=1.0, reason="set by the user"
            )

        await self.write(fn)

    async def remove_slot(self, user_id: str, key: str) -> None:
        topic, slot = split_key(key)
        now = utcnow()

        async def fn(conn: AsyncConnection) -> bool:
            where = (
                profile_slots.c.user_id == user_id,
                profile_slots.c.topic == topic,
                profile_slots.c.slot == slot,
                profile_slots.c.deleted_at.is_(None),
            )
            old = (await conn.execute(sa.select(profile_slots.c.value).where(*where))).first()
            if old is None:
                return False
            await conn.execute(sa.update(profile_slots).where(*where).values(deleted_at=now))
            await conn.execute(
                _history(
                    user_id, topic, slot, "remove", old[0], None, "removed by the user", (), now
                )
            )
            return True

        if not await self.write(fn):
            raise NotFoundError(f"no profile slot '{topic}.{slot}'", hint="see `cozy profile show`")

    async def update_profile(
        self, user_id: str, messages: Sequence[Message], *, source_ids: Sequence[str] = ()
    ) -> None:
        """Extract slots from messages now (the buffered job calls `apply_pending`)."""
        text = "\n".join(m.content for m in messages if m.role == "user")
        await self.extract_and_merge(user_id, text, source_ids=source_ids, cursor=None)

    async def extract_and_merge(
        self,
        user_id: str,
        text: str,
        *,
        source_ids: Sequence[str],
        cursor: float | None,
    ) -> int:
        """Ask the model, then merge the slots (and move the cursor) in one transaction."""
        router = self.ctx.router
        if router is None:
            raise PermanentJobError("the profile update needs the runtime's AI engine")
        if text.strip():
            route = await router.resolve(self.model)
            current = (await self.get_profile(user_id, max_tokens=2000)).summary
            try:
                result = await extract(route.engine, route.model, self.topics, current, text)
            except ProfileExtractionFailed as exc:
                raise PermanentJobError(str(exc)) from exc
            updates = [
                (slot_name(u.topic), slot_name(u.slot), " ".join(u.value.split()), u.confidence)
                for u in result.slots
            ]
            updates = [u for u in updates if u[0] in self.topics and u[1] and u[2]]
        else:
            updates = []

        async def fn(conn: AsyncConnection) -> int:
            n = 0
            for topic, slot, value, confidence in updates:
                if await self._set(
                    conn,
                    user_id,
                    topic,
                    slot,
                    value,
                    confidence=confidence,
                    reason="extracted from the conversation",
                    sources=source_ids,
                ):
                    n += 1
            if cursor is not None:
                now = utcnow()
                res = await conn.execute(
                    sa.update(profile_cursors)
                    .where(profile_cursors.c.user_id == user_id)
                    .values(last_message_at=cursor, updated_at=now)
                )
                if not res.rowcount:
                    await conn.execute(
                        sa.insert(profile_cursors).values(
                            user_id=user_id, last_message_at=cursor, updated_at=now
                        )
                    )
            return n

        written: int = await self.write(fn)
        return written

    def background(self) -> Any:
        from cozy.engines.profile.jobs import ProfileJobs

        return ProfileJobs(self)

    async def cursor(self, user_id: str) -> float:
        rows = await self.store.read(
            sa.select(profile_cursors.c.last_message_at).where(profile_cursors.c.user_id == user_id)
        )
        return float(rows[0][0]) if rows else 0.0
