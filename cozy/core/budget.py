"""Token budget: estimate sizes and trim context in the brief's priority order.

personality prompt > recent messages > profile / memories / knowledge > summary.

The estimator is deliberately cheap (no tokenizer download): about four characters
a token plus a small per-message overhead.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from cozy.core.types import KnowledgeHit, MemoryHit, Message

MESSAGE_OVERHEAD = 4


@dataclass(slots=True)
class TokenEstimator:
    chars_per_token: float = 4.0

    def count(self, text: str) -> int:
        if not text:
            return 0
        return max(1, int(len(text) / self.chars_per_token + 0.5))

    def message(self, m: Message) -> int:
        size = self.count(m.content) + MESSAGE_OVERHEAD
        for call in m.tool_calls:
            size += self.count(call.name) + self.count(call.arguments)
        return size

    def messages(self, items: Sequence[Message]) -> int:
        return sum(self.message(m) for m in items)


@dataclass(slots=True)
class BudgetResult:
    limit: int
    used: int = 0
    dropped_messages: int = 0
    dropped_memories: int = 0
    dropped_knowledge: int = 0
    profile_dropped: bool = False
    summary_dropped: bool = False
    over_budget: bool = False
    parts: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, object]:
        return {
            "limit": self.limit,
            "used": self.used,
            "parts": dict(self.parts),
            "trimmed": {
                "messages": self.dropped_messages,
                "memories": self.dropped_memories,
                "knowledge": self.dropped_knowledge,
                "profile": self.profile_dropped,
                "summary": self.summary_dropped,
            },
            "over_budget": self.over_budget,
        }


@dataclass(slots=True)
class Trimmed:
    recent: list[Message]
    memories: list[MemoryHit]
    knowledge: list[KnowledgeHit]
    profile: str
    summary: str
    result: BudgetResult


def fit(
    limit: int,
    *,
    system_prompt: str,
    user_message: Message | Sequence[Message],
    recent: Sequence[Message],
    profile: str,
    memories: Sequence[MemoryHit],
    knowledge: Sequence[KnowledgeHit],
    summary: str,
    estimator: TokenEstimator | None = None,
) -> Trimmed:
    """Keep what fits, highest priority first. Never drops the prompt or the new turn.

    `user_message` is the new turn: the user's message, or (when a client continues
    after its own tool calls) the assistant's tool calls and their results.
    """
    est = estimator or TokenEstimator()
    res = BudgetResult(limit=limit)
    tail = [user_message] if isinstance(user_message, Message) else list(user_message)
    used = est.count(system_prompt) + MESSAGE_OVERHEAD + est.messages(tail)
    res.parts["system"] = est.count(system_prompt)
    res.parts["user"] = est.messages(tail)
    if used > limit:
        res.over_budget = True

    kept_recent: list[Message] = []
    budget_left = limit - used
    for m in reversed(recent):  # newest first
        size = est.message(m)
        if size > budget_left:
            break
        kept_recent.append(m)
        budget_left -= size
    kept_recent.reverse()
    _drop_orphan_tool_results(kept_recent)
    res.dropped_messages = len(recent) - len(kept_recent)
    res.parts["recent"] = est.messages(kept_recent)
    used = limit - budget_left

    # profile, memories, knowledge share the same priority: take them round-robin
    # so one engine cannot starve the others.
    kept_profile = ""
    if profile and est.count(profile) <= limit - used:
        kept_profile = profile
        used += est.count(profile)
    else:
        res.profile_dropped = bool(profile)
    kept_mem: list[MemoryHit] = []
    kept_kn: list[KnowledgeHit] = []
    queues: list[tuple[Sequence[MemoryHit] | Sequence[KnowledgeHit], list[object]]] = [
        (memories, kept_mem),  # type: ignore[list-item]
        (knowledge, kept_kn),  # type: ignore[list-item]
    ]
    for i in range(max(len(memories), len(knowledge))):
        for items, kept in queues:
            if i < len(items):
                size = est.count(items[i].text) + 2
                if size <= limit - used:
                    kept.append(items[i])
                    used += size
    res.dropped_memories = len(memories) - len(kept_mem)
    res.dropped_knowledge = len(knowledge) - len(kept_kn)
    res.parts["profile"] = est.count(kept_profile)
    res.parts["memories"] = sum(est.count(m.text) + 2 for m in kept_mem)
    res.parts["knowledge"] = sum(est.count(k.text) + 2 for k in kept_kn)

    kept_summary = ""
    if summary and est.count(summary) <= limit - used:
        kept_summary = summary
        used += est.count(summary)
    else:
        res.summary_dropped = bool(summary)
    res.parts["summary"] = est.count(kept_summary)
    res.used = used
    return Trimmed(kept_recent, kept_mem, kept_kn, kept_profile, kept_summary, res)


def _drop_orphan_tool_results(history: list[Message]) -> None:
    """A tool result whose assistant tool call was trimmed away confuses every API."""
    while history and history[0].role == "tool":
        history.pop(0)
