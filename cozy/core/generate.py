"""The generate stage: stream the model's answer, run the tools it calls, repeat.

At most `rounds` tool rounds; the last round offers no tools, so the model answers.
A call to a client's tool ends the turn: the caller runs it and continues the turn.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace

from cozy.core.events import ChatEvent, TextDelta, ToolCallRequested
from cozy.core.persist import to_new
from cozy.core.toolloop import ToolRunner
from cozy.core.turn import Turn
from cozy.core.types import GenerationOptions, Message, ToolCall, ToolSpec
from cozy.engines.base import Route, ToolContext


@dataclass(slots=True)
class Generation:
    convo: list[Message]  # the prompt, then each round's calls and results
    server_tools: list[ToolSpec]  # run here
    client_tools: list[ToolSpec]  # handed back to the caller
    rounds: int
    reported_prompt: int = 0  # the provider's prompt tokens of the first round
    _server: dict[str, ToolSpec] = field(default_factory=dict)
    _client: dict[str, ToolSpec] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._server = {s.name: s for s in self.server_tools}
        self._client = {s.name: s for s in self.client_tools}

    @property
    def offered(self) -> list[ToolSpec]:
        return [*self.server_tools, *self.client_tools]

    async def run(
        self,
        turn: Turn,
        route: Route,
        options: GenerationOptions,
        tools: ToolRunner,
        ctx: ToolContext,
    ) -> AsyncIterator[ChatEvent]:
        offered = self.offered
        for n in range(max(1, self.rounds) + 1):
            calls: list[ToolCall] = []
            text: list[str] = []
            tools_now = offered if n < self.rounds else []
            async for chunk in route.engine.chat_stream(
                self.convo, model=route.model, tools=tools_now or None, options=options
            ):
                if chunk.delta:
                    text.append(chunk.delta)
                    turn.text.append(chunk.delta)
                    yield TextDelta(chunk.delta)
                calls.extend(chunk.tool_calls or ())
                turn.finish_reason = chunk.finish_reason or turn.finish_reason
                turn.usage.add(chunk.usage)
                if n == 0 and chunk.usage is not None:
                    self.reported_prompt = chunk.usage.prompt_tokens
            if not calls:
                return
            assistant = Message("assistant", "".join(text), tool_calls=calls)
            self.convo.append(assistant)
            turn.pending.append(to_new(assistant))
            client = [c for c in calls if c.name in self._client and c.name not in self._server]
            if client:  # client-side tools: hand them back to the caller and stop
                for c in client:
                    yield ToolCallRequested(c, None, client_side=True)
                turn.client_calls = client
                turn.finish_reason = "tool_calls"
                return
            async for event in self._tool_round(calls, turn, tools, ctx):
                yield event
            if options.tool_choice not in (None, "auto", "none"):
                # the forced call is made: the next rounds may answer in text (forced in
                # every round, a model calls tools until the round limit)
                options = replace(options, tool_choice="auto")

    async def _tool_round(
        self, calls: list[ToolCall], turn: Turn, tools: ToolRunner, ctx: ToolContext
    ) -> AsyncIterator[ChatEvent]:
        for c in calls:
            spec = self._server.get(c.name)
            yield ToolCallRequested(c, spec.level if spec else None)
        results: list[Message] = []
        async for event in tools.run(calls, self._server, ctx, turn.req.approver, results):
            yield event
        self.convo.extend(results)
        # the message carrying the tools' images is for this turn only: the stored tool
        # messages name each image, and no image bytes go into the history
        turn.pending.extend(to_new(m) for m in results if not m.images)
