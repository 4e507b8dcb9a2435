"""Fact extraction with the AI engine's structured JSON output.

The model sees the new messages and the most similar existing memories (under
short aliases m1, m2 … so it cannot invent ids) and answers with operations:
add a fact, update one (the old text goes to history with the reason), or mark
one obsolete. The answer is validated as a whole before anything is written.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from cozy.core.types import Message
from cozy.engines.structured import ask_json, list_schema, parse_json_answer

log = logging.getLogger("cozy.memory")


class Operation(BaseModel):
    op: Literal["add", "update", "obsolete"]
    text: str = Field(default="", max_length=2000)
    id: str | None = None
    reason: str = Field(default="", max_length=500)


class Extraction(BaseModel):
    operations: list[Operation] = Field(default_factory=list, max_length=50)


SCHEMA = list_schema(
    "operations",
    {
        "op": {"type": "string", "enum": ["add", "update", "obsolete"]},
        "text": {"type": "string"},
        "id": {"type": "string"},
        "reason": {"type": "string"},
    },
    ["op"],
)

SYSTEM = """You maintain a long-term memory of durable facts about the user.
Read the new conversation and the existing memories, and answer ONLY with JSON:
{"operations": [{"op": "add"|"update"|"obsolete", "id": "m1", "text": "...", "reason": "..."}]}
- add: a new durable fact about the user (preferences, people, plans, biography), one short
  third-person sentence ("The user's sister is called Ana"). Skip small talk and anything
  the assistant said that the user did not confirm.
- update: an existing memory (by its id) that the conversation changes or refines; give the
  full new text and the reason.
- obsolete: an existing memory (by its id) that is no longer true; give the reason.
- Never repeat a fact that an existing memory already states. Return {"operations": []}
  when there is nothing durable to remember."""


class ExtractionFailed(Exception):
    """The model gave no usable answer after the retries."""


@dataclass(slots=True)
class Known:
    alias: str
    id: str
    text: str


def build_prompt(messages: Sequence[Message], known: Sequence[Known], max_chars: int) -> str:
    existing = "\n".join(f"{k.alias}: {k.text}" for k in known) or "(none)"
    convo_lines = []
    for m in messages:
        text = m.content if len(m.content) <= max_chars else m.content[:max_chars] + " […]"
        convo_lines.append(f"{m.role}: {text}")
    convo = "\n".join(convo_lines)
    return f"Existing memories:\n{existing}\n\nNew conversation:\n{convo}"


def parse(text: str) -> Extraction:
    """Validate the model's answer; raise ValueError with the reason."""
    return parse_json_answer(text, Extraction)


async def extract(
    engine: Any,
    model: str,
    messages: Sequence[Message],
    known: Sequence[Known],
    *,
    attempts: int = 2,
    max_tokens: int | None = 800,
    max_chars: int = 6000,
) -> Extraction:
    """Ask the model; retry on invalid JSON; raise ExtractionFailed after `attempts`."""
    prompt = build_prompt(messages, known, max_chars)
    return await ask_json(
        engine,
        model,
        [Message("system", SYSTEM), Message("user", prompt)],
        Extraction,
        name="memory_operations",
        schema=SCHEMA,
        max_tokens=max_tokens,
        attempts=attempts,
        log=log,
        what="memory extraction",
        failed=lambda reasons: ExtractionFailed(
            "the model returned invalid JSON for memory extraction: " + reasons
        ),
    )
