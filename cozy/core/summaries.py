"""Rolling session summaries, made in the background when history stops fitting.

The orchestrator asks `needs_summary` after building the context: when messages
older than the ones sent to the model are not covered by the current summary
(beyond a minimum span), it queues one durable `session.summarize` job per
session. The job folds the oldest unsummarised span into the running summary
with the AI engine and stores it with the message range it covers; the next
turns send summary + recent messages. Stored messages are never replaced.
"""

from __future__ import annotations

import logging
from typing import Any

from cozy.core.errors import NotFoundError
from cozy.core.types import GenerationOptions, Message
from cozy.engines.base import ModelRouter
from cozy.storage.job_queue import JobQueue
from cozy.storage.summaries import Summary, SummaryStore

log = logging.getLogger("cozy.summaries")

JOB_KIND = "session.summarize"
SPAN_LIMIT = 200  # messages folded in per job; a longer backlog re-queues itself

INSTRUCTIONS = (
    "Summarize the conversation below for your own future reference. Keep names, "
    "facts, decisions, open questions and what the user wants; drop small talk. "
    "Write at most {words} words of plain prose. If a previous summary is given, "
    "merge it with the new messages into one updated summary."
)


class Summarizer:
    def __init__(
        self,
        summaries: SummaryStore,
        jobs: JobQueue,
        router: ModelRouter,
        *,
        keep_recent: int = 20,
        min_span: int | None = None,
        words: int = 250,
    ) -> None:
        self.summaries = summaries
        self.jobs = jobs
        self.router = router
        self.keep_recent = keep_recent
        self.min_span = min_span if min_span is not None else max(4, keep_recent // 2)
        self.words = words

    async def request(
        self, session_id: str, user_id: str, model: str, *, keep_recent: int | None = None
    ) -> str:
        """Queue (or re-arm) the session's summary job."""
        payload: dict[str, Any] = {"session_id": session_id, "model": model}
        if keep_recent is not None:
            payload["keep_recent"] = keep_recent
        return await self.jobs.enqueue(
            JOB_KIND, payload, user_id=user_id, key=f"summary:{session_id}"
        )

    async def handle(self, payload: dict[str, Any], job: Any = None) -> None:
        """Job handler: fold the oldest unsummarised span into the summary."""
        session_id = str(payload["session_id"])
        current = await self.summaries.latest(session_id)
        keep = int(payload.get("keep_recent", self.keep_recent))
        rows = await self.summaries.unsummarized(
            session_id,
            after=current.last_message_id if current else None,
            keep_recent=min(keep, self.keep_recent),
            limit=SPAN_LIMIT,
        )
        if len(rows) < (1 if keep < self.keep_recent else self.min_span):
            return  # too little to be worth a model call yet
        summary = await self._fold(current, rows, str(payload.get("model") or ""))
        if len(rows) == SPAN_LIMIT:  # more backlog: go again
            await self.request(session_id, job.user_id if job else "", str(payload.get("model")))
        log.info(
            "session summarised",
            extra={"session_id": session_id, "summary_id": summary.id, "messages": len(rows)},
        )

    async def regenerate(self, session_id: str, model: str | None) -> Summary | None:
        """Supersede the current summaries and rebuild from the first message."""
        await self.summaries.supersede_all(session_id)
        latest: Summary | None = None
        while True:
            rows = await self.summaries.unsummarized(
                session_id,
                after=latest.last_message_id if latest else None,
                keep_recent=self.keep_recent,
                limit=SPAN_LIMIT,
            )
            if not rows:
                return latest
            latest = await self._fold(latest, rows, model or "")

    async def _fold(self, current: Summary | None, rows: list[Any], model: str) -> Summary:
        session_id = rows[0].session_id
        transcript = "\n".join(_line(r) for r in rows)
        parts = [INSTRUCTIONS.format(words=self.words)]
        if current is not None:
            parts.append(f"Previous summary:\n{current.text}")
        parts.append(f"New messages:\n{transcript}")
        route = await self.router.resolve(model or None)
        result = await route.engine.chat(
            [
                Message("system", "You write faithful, compact conversation summaries."),
                Message("user", "\n\n".join(parts)),
            ],
            model=route.model,
            options=GenerationOptions(temperature=0.2, max_tokens=self.words * 2),
        )
        text = result.content.strip()
        if not text:
            raise NotFoundError("the model returned an empty summary")
        first = current.first_message_id if current else rows[0].id
        count = (current.message_count if current else 0) + len(rows)
        return await self.summaries.add(session_id, first, rows[-1].id, count, text, route.label)


def _line(row: Any) -> str:
    who = {"user": "User", "assistant": "Assistant", "tool": f"Tool {row.name or ''}".strip()}
    text = (row.content or "").strip()
    if getattr(row, "fragments", None):  # the question, not the first 2000 chars of a file
        names = ", ".join(f.source for f in row.fragments)
        text = f"{(row.typed or '').strip()} [attached: {names}]".strip()
    if row.tool_calls:
        calls = ", ".join(str(c.get("name")) for c in row.tool_calls if isinstance(c, dict))
        text = f"{text} [called {calls}]".strip()
    return f"{who.get(row.role, row.role)}: {text[:2000]}"
