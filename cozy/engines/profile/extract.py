"""Profile extraction: new user text -> slot values, through structured JSON output."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, Field

from cozy.core.types import Message
from cozy.engines.structured import ask_json, list_schema, parse_json_answer

log = logging.getLogger("cozy.profile")


class SlotUpdate(BaseModel):
    topic: str = Field(max_length=64)
    slot: str = Field(max_length=64)
    value: str = Field(max_length=500)
    confidence: float = Field(default=0.8, ge=0.0, le=1.0)


class ProfileExtraction(BaseModel):
    slots: list[SlotUpdate] = Field(default_factory=list, max_length=50)


SCHEMA = list_schema(
    "slots",
    {
        "topic": {"type": "string"},
        "slot": {"type": "string"},
        "value": {"type": "string"},
        "confidence": {"type": "number", "minimum": 0, "maximum": 1},
    },
    ["topic", "slot", "value"],
)


class ProfileExtractionFailed(Exception):
    pass


def system_prompt(topics: Mapping[str, Sequence[str]]) -> str:
    lines = "\n".join(f"- {t}: {', '.join(slots)}" for t, slots in topics.items())
    return (
        "You keep a structured profile of the user: topic -> slot -> value.\n"
        f"Topics and their usual slots:\n{lines}\n"
        "From the user's new messages, return ONLY JSON "
        '{"slots": [{"topic": ..., "slot": ..., "value": ..., "confidence": 0..1}]} '
        "for facts the user states about themselves. Use the topics above; a slot may be "
        "new if none fits. Give the full current value (it replaces the old one). "
        'Return {"slots": []} when nothing is stated.'
    )


def parse(text: str) -> ProfileExtraction:
    """Validate the model's answer; raise ValueError with the reason."""
    return parse_json_answer(text, ProfileExtraction)


async def extract(
    engine: Any,
    model: str,
    topics: Mapping[str, Sequence[str]],
    current: str,
    user_text: str,
    *,
    attempts: int = 2,
    max_tokens: int | None = 600,
) -> ProfileExtraction:
    prompt = f"Current profile:\n{current or '(empty)'}\n\nNew messages from the user:\n{user_text}"
    return await ask_json(
        engine,
        model,
        [Message("system", system_prompt(topics)), Message("user", prompt)],
        ProfileExtraction,
        name="profile_slots",
        schema=SCHEMA,
        max_tokens=max_tokens,
        attempts=attempts,
        log=log,
        what="profile extraction",
        failed=lambda reasons: ProfileExtractionFailed(
            "the model returned invalid JSON for the profile update: " + reasons
        ),
    )
