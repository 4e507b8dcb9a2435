"""Token and spend metering of one chat request against the limits and budgets.

At the start: an estimate (prompt and personality prompt characters / 4 + 4 a message,
plus `max_tokens` —
or the context's `reserve_answer_tokens` when the client sets none — for each of the
`n` choices) is reserved on every limit and budget of the caller's key and user, or the
request is refused with a 429 before any model call. At the end: the reservation is
replaced by the usage the model reported (a failed turn settles at what it used; an
interrupted stream keeps the reservation, as its true usage is unknown).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cozy.engines.config import AISection
from cozy.server.ratelimit import MICRO, RateLimiter, Reservation
from cozy.server.schemas import ChatCompletionRequest


def estimate_prompt(body: ChatCompletionRequest) -> int:
    return sum(len(m.text()) // 4 + 4 for m in body.messages)


def micro_usd(ai: AISection, model: str | None, prompt: int, completion: int) -> int:
    price = ai.price(model) if model else None
    if price is None:
        return 0
    return round(prompt * price.input + completion * price.output)  # per 1M tokens = micro-$


class ChatMeter:
    def __init__(self, limiter: RateLimiter, scopes: Sequence[str], ai: AISection) -> None:
        self.limiter = limiter
        self.scopes = tuple(scopes)
        self.ai = ai
        self.held: Reservation | None = None
        self.tokens = 0
        self.micro = 0
        self.done = 0

    async def reserve(
        self, body: ChatCompletionRequest, model: str | None, answer: int, system: int = 0
    ) -> None:
        n = body.n or 1
        prompt = (estimate_prompt(body) + system) * n
        completion = (body.max_tokens or body.max_completion_tokens or answer) * n
        cost = micro_usd(self.ai, model, prompt, completion)
        self.held = await self.limiter.reserve(self.scopes, prompt + completion, cost)

    def used(self, model: str, usage: dict[str, Any]) -> None:
        prompt = int(usage.get("prompt_tokens", 0) or 0)
        completion = int(usage.get("completion_tokens", 0) or 0)
        self.tokens += int(usage.get("total_tokens", 0) or prompt + completion)
        self.micro += micro_usd(self.ai, model, prompt, completion)
        self.done += 1

    def settle(self, interrupted: bool) -> None:
        held, self.held = self.held, None
        if held is None or not held.keys or (interrupted and not self.done):
            return  # nothing held (no token limit or budget configured), or kept as held
        self.limiter.settle_soon(held, self.tokens, self.micro)


__all__ = ["MICRO", "ChatMeter", "estimate_prompt", "micro_usd"]
