"""ContextService: ask knowledge, profile and memory in parallel, then fit the budget.

Each engine runs under its own timeout. A failure or a timeout gives an empty
result and a degrade reason; it never fails the request. At most `concurrency`
builds search at once (twice the cores); the others wait for a slot first, so an
engine's timeout measures its own work, not the queue of a busy server.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

from cozy.core.budget import TokenEstimator, fit
from cozy.core.events import ContextMeta, context_meta
from cozy.core.personalities import Personality
from cozy.core.types import KnowledgeHit, MemoryHit, Message, Profile
from cozy.engines.base import KnowledgeEngine, MemoryEngine, ProfileEngine
from cozy.engines.degraded import noting

T = TypeVar("T")

DEFAULT_TIMEOUTS = {"knowledge": 0.5, "profile": 0.3, "memory": 0.4}
QUEUE_TIMEOUT = 30.0  # s a turn may wait for a context slot on a saturated server


@dataclass(slots=True)
class ContextBundle:
    system_prompt: str
    recent_messages: list[Message]
    retrieved_knowledge: list[KnowledgeHit] = field(default_factory=list)
    retrieved_memories: list[MemoryHit] = field(default_factory=list)
    user_profile: str = ""
    summary: str = ""
    token_budget: dict[str, Any] = field(default_factory=dict)
    metadata: ContextMeta = field(default_factory=context_meta)

    def prompt_messages(self, user_message: Message | Sequence[Message]) -> list[Message]:
        """The messages sent to the model: one system message, history, the new turn."""
        tail = [user_message] if isinstance(user_message, Message) else list(user_message)
        return [Message("system", render_system(self)), *self.recent_messages, *tail]


def render_system(bundle: ContextBundle) -> str:
    parts = [bundle.system_prompt.strip()]
    if bundle.user_profile:
        parts.append("What you know about the user:\n" + bundle.user_profile.strip())
    if bundle.retrieved_memories:
        lines = "\n".join(f"- {m.text}" for m in bundle.retrieved_memories)
        parts.append("Things the user told you before (use when relevant):\n" + lines)
    if bundle.retrieved_knowledge:
        lines = "\n\n".join(
            f"[{i}] {k.citation or k.id}\n{k.text}"
            for i, k in enumerate(bundle.retrieved_knowledge, 1)
        )
        parts.append("Knowledge from the user's documents (cite as [n]):\n" + lines)
    if bundle.summary:
        parts.append("Summary of the earlier conversation:\n" + bundle.summary)
    return "\n\n".join(parts)


class ContextService:
    def __init__(
        self,
        *,
        knowledge: KnowledgeEngine | None = None,
        profile: ProfileEngine | None = None,
        memory: MemoryEngine | None = None,
        timeouts: dict[str, float] | None = None,
        estimator: TokenEstimator | None = None,
        concurrency: int | None = None,
        queue_timeout: float = QUEUE_TIMEOUT,
    ) -> None:
        self.knowledge = knowledge
        self.profile = profile
        self.memory = memory
        self.timeouts = {**DEFAULT_TIMEOUTS, **(timeouts or {})}
        self.estimator = estimator or TokenEstimator()
        # Context builds running at once. Their engine timeouts are for the engines'
        # own work: with 200 turns searching together on two cores every search waits
        # for the others and most timed out (91 % of answers degraded, #20); past this
        # many a turn waits its turn first, without the engine clock running.
        self.concurrency = concurrency or max(2, 2 * (os.cpu_count() or 1))
        self._slots = asyncio.Semaphore(self.concurrency)
        self.queue_timeout = queue_timeout

    async def _timed(self, name: str, coro: Awaitable[T], meta: ContextMeta) -> T | None:
        started = time.perf_counter()
        timeout = self.timeouts.get(name, 1.0)
        notes: list[str] = []
        try:
            with noting() as notes:  # e.g. knowledge: keywords only
                value = await asyncio.wait_for(coro, timeout)
            meta["degrade_reasons"].extend(f"{name}: {note}" for note in notes)
            return value
        except TimeoutError:
            meta["degrade_reasons"].append(f"{name}: timed out after {timeout:g}s")
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # an engine failure degrades, never fails the turn
            meta["degrade_reasons"].append(f"{name}: {type(exc).__name__}: {exc}")
        finally:
            meta["engines"][name] = {
                "latency_ms": round((time.perf_counter() - started) * 1000, 2),
                "degraded": bool(notes),  # answered, but with less than it should have
            }
        meta["engines"][name]["degraded"] = True
        return None

    async def _search(self, calls: dict[str, Awaitable[Any]], meta: ContextMeta) -> dict[str, Any]:
        """The engines' searches, in parallel, once a slot is free (within
        `queue_timeout` s: past it the turn goes on without context and says why)."""
        waited = time.perf_counter()
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout)
        except TimeoutError:
            for name, coro in calls.items():
                if asyncio.iscoroutine(coro):
                    coro.close()  # never started: no "never awaited" warning
                meta["engines"][name] = {"latency_ms": 0.0, "degraded": True}
                meta["degrade_reasons"].append(
                    f"{name}: server busy (no context slot within {self.queue_timeout:g}s)"
                )
            return {}
        try:
            meta["queued_ms"] = round((time.perf_counter() - waited) * 1000, 2)
            values = await asyncio.gather(*(self._timed(n, c, meta) for n, c in calls.items()))
        finally:
            self._slots.release()
        return dict(zip(calls, values, strict=True))

    async def build(
        self,
        *,
        query: str,
        user_id: str,
        personality: Personality,
        history: Sequence[Message],
        user_message: Message | Sequence[Message],
        token_budget: int,
        session_id: str | None = None,
        summary: str = "",
        use_engines: bool = True,
        system_prompt: str | None = None,
        estimator: TokenEstimator | None = None,
    ) -> ContextBundle:
        meta = context_meta()
        switches = personality.context
        calls: dict[str, Awaitable[Any]] = {}
        if use_engines and query.strip():
            if self.knowledge is not None and switches.knowledge:
                calls["knowledge"] = self.knowledge.search_knowledge(
                    query, user_id=user_id, collections=switches.collections or None
                )
            if self.profile is not None and switches.profile:
                calls["profile"] = self.profile.get_profile(user_id)
            if self.memory is not None and switches.memory:
                calls["memory"] = self.memory.search_memories(
                    query, user_id=user_id, personality_id=personality.id, session_id=session_id
                )
        meta["enabled_engines"] = list(calls)
        results: dict[str, Any] = {}
        if calls:
            results = await self._search(calls, meta)
        meta["degraded"] = bool(meta["degrade_reasons"])

        profile = results.get("profile")
        profile_text = profile.summary if isinstance(profile, Profile) else ""
        memories = list(results.get("memory") or [])
        knowledge = list(results.get("knowledge") or [])
        prompt = system_prompt if system_prompt is not None else personality.system_prompt
        trimmed = fit(
            token_budget,
            system_prompt=prompt,
            user_message=user_message,
            recent=history,
            profile=profile_text,
            memories=memories,
            knowledge=knowledge,
            summary=summary,
            estimator=estimator or self.estimator,
        )
        meta["memory_ids"] = [m.id for m in trimmed.memories]
        meta["memories"] = [
            {"id": m.id, "text": m.text, "score": m.score} for m in trimmed.memories
        ]
        meta["knowledge"] = [
            {"id": k.id, "citation": k.citation, "score": k.score} for k in trimmed.knowledge
        ]
        meta["profile_slots"] = (
            [f"{s.topic}.{s.slot}" for s in profile.slots] if isinstance(profile, Profile) else []
        )
        meta["token_budget"] = trimmed.result.to_dict()
        return ContextBundle(
            system_prompt=prompt,
            recent_messages=trimmed.recent,
            retrieved_knowledge=trimmed.knowledge,
            retrieved_memories=trimmed.memories,
            user_profile=trimmed.profile,
            summary=trimmed.summary,
            token_budget=trimmed.result.to_dict(),
            metadata=meta,
        )
