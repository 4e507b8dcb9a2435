"""The turn's writes: the user's message first, the answer last, in one transaction each.

The answer is saved whatever the end (complete, interrupted, failed) together with
its tool rounds and, when the context stage asked for one, the session's summary
job. A complete answer is told to the turn hooks (engines/capabilities.py
`TurnHook`): inside its transaction (they queue their jobs there), then once it
is committed (the job worker's wake-up).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Awaitable, Callable, Sequence
from functools import partial
from typing import Any

from cozy.core.errors import CozyError
from cozy.core.events import brief
from cozy.core.history import UNANSWERED
from cozy.core.summaries import JOB_KIND
from cozy.core.turn import Turn, log_turn, title_of_request
from cozy.core.types import Message
from cozy.engines.capabilities import SavedTurn, TurnHook
from cozy.storage.jobs import enqueue
from cozy.storage.schema import new_id
from cozy.storage.store import NewMessage, Store


class TurnWriter:
    def __init__(self, store: Store, hooks: Sequence[TurnHook] = ()) -> None:
        self.store = store
        self.hooks = list(hooks)

    async def question(self, turn: Turn, first: list[NewMessage]) -> str:
        """Store the turn's opening messages (and a new session with them); returns the
        id of the first: the user's message, or the first of a client's tool results."""
        assert turn.session is not None
        create = turn.session if turn.session_unsaved else None
        ids = await self.store.add_messages(
            turn.session.id, first, touch_title=title_of_request(turn.req), create=create
        )
        turn.session_unsaved = False
        turn.user_message_id = ids[0]
        return ids[0]

    async def answer(
        self, turn: Turn, status: str, error: BaseException | None = None
    ) -> str | None:
        """Save the assistant's answer (complete, interrupted or failed), once; returns
        its id (None when nothing was saved, or the turn ended on tool rounds)."""
        if turn.session is not None and turn.session_unsaved:  # failed before the first write
            turn.session_unsaved = False
            with contextlib.suppress(CozyError):  # the turn's own error is the one to report
                await self.store.insert_session(turn.session)
        if turn.session is None or turn.user_message_id is None or turn.persisted:
            return None
        turn.persisted = True
        text = "".join(turn.text)
        final = NewMessage(
            "assistant",
            text,
            status=status,
            metadata=_metadata(turn, error),
            prompt_tokens=turn.usage.prompt_tokens or None,
            completion_tokens=turn.usage.completion_tokens or None,
            latency_ms=round((time.perf_counter() - turn.started) * 1000, 2),
        )
        pending = answer_every_call(turn.pending)
        # an answer that said nothing after its tool rounds is not a message (the rounds
        # and their results are); one with no rounds keeps the turn's status
        items = [*pending, final] if text or not pending else pending
        turn.pending = []
        for m in items:  # ids now (in order: they sort by time), so the hooks know them
            m.id = new_id("msg")
        answer_id = final.id if items[-1] is final else None
        saved = self._saved(turn, answer_id) if status == "complete" else None
        also = [turn.summary_job] if turn.summary_job is not None else []
        turn.summary_job = None
        if saved is not None:
            also.insert(0, partial(self._in_transaction, saved=saved))
        await self.store.add_messages(turn.session.id, items, also=also)
        if status != "complete":
            log_turn(turn, status)
        if saved is not None:
            for hook in self.hooks:
                await hook.committed(saved)
        return answer_id

    def _saved(self, turn: Turn, answer_id: str | None) -> SavedTurn | None:
        """What the hooks hear of a complete answer (None: no hooks, or no answer)."""
        if not (self.hooks and answer_id and turn.session and turn.user_message_id):
            return None
        return SavedTurn(
            user_id=turn.session.user_id,
            session_id=turn.session.id,
            personality_id=turn.personality.id if turn.personality else turn.session.personality_id,
            message_ids=(turn.user_message_id, answer_id),
        )

    async def _in_transaction(self, conn: Any, saved: SavedTurn) -> None:
        for hook in self.hooks:
            await hook.in_transaction(conn, saved)


def _metadata(turn: Turn, error: BaseException | None) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "request_id": turn.request_id,
        "model": turn.route.label if turn.route else None,
        "timings": dict(turn.timings),
        "context": brief(turn.context_meta) if turn.context_meta else {},
        "tokens": dict(turn.tokens),
    }
    if error is not None:
        meta["error"] = str(error)
    return meta


def to_new(m: Message) -> NewMessage:
    calls = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in m.tool_calls]
    return NewMessage(
        m.role, m.content, tool_calls=calls or None, tool_call_id=m.tool_call_id, name=m.name
    )


def answer_every_call(pending: list[NewMessage]) -> list[NewMessage]:
    """The turn's tool rounds with a result for every call: a call cut off by Ctrl-C
    (or never reached) gets a tool message saying so, so the stored history stays a
    sequence a model API accepts."""
    out: list[NewMessage] = []
    open_calls: list[dict[str, Any]] = []

    def close_round() -> None:
        for c in open_calls:
            out.append(
                NewMessage("tool", UNANSWERED, tool_call_id=str(c.get("id")), name=c.get("name"))
            )
        open_calls.clear()

    for m in pending:
        if m.role == "tool":
            open_calls[:] = [c for c in open_calls if c.get("id") != m.tool_call_id]
        else:
            close_round()
        out.append(m)
        if m.role == "assistant" and m.tool_calls:
            open_calls.extend(m.tool_calls)
    close_round()
    return out


def summary_job(
    session_id: str, user_id: str, model: str, *, keep_recent: int
) -> Callable[[Any], Awaitable[Any]]:
    """Queue (or re-arm) the session's summary job inside a store transaction.

    Same job as `Summarizer.request`, written with the turn's messages (one transaction).
    """

    async def step(conn: Any) -> Any:
        payload = {"session_id": session_id, "model": model, "keep_recent": keep_recent}
        return await enqueue(conn, JOB_KIND, payload, user_id=user_id, key=f"summary:{session_id}")

    return step
