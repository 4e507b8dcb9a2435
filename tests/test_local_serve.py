"""`cozy serve` answering with the embedded model, through the official `openai` client
against a real `cozy serve` process (uvicorn): streaming works; a full queue on the one
model answers 503 with Retry-After to a streaming request as to a plain one (the place
is taken before the stream's 200); a client that leaves mid-stream stops the
generation, frees the model for the next request and keeps its partial answer as
interrupted."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from helpers import opened, wait_for_health
from server_fixtures import free_port, server_env

from cozy.settings import Settings
from cozy.storage.store import MessageRow

try:
    import llama_cpp  # noqa: F401
except ImportError:  # CI installs it (install.sh builds it): missing there is a failure
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "llama-cpp-python is not installed (./install.sh builds it)", allow_module_level=True
    )

COZY = [sys.executable, "-m", "cozy"]
STORY = [{"role": "user", "content": "Write a long story about a dragon."}]


@pytest.fixture
def served(cozy_home: Path) -> Iterator[openai.OpenAI]:
    """A real `cozy serve --no-auth` on a free port, the embedded model behind it with a
    queue of one place."""
    (cozy_home / "engines.yaml").write_text(
        "ai:\n  provider: local\n  providers:\n    local: {max_queue: 1}\n"
        "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n",
        encoding="utf-8",
    )
    port = free_port()
    proc = subprocess.Popen(
        [*COZY, "serve", "--port", str(port), "--no-auth"],
        env=server_env(cozy_home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    url = f"http://127.0.0.1:{port}"
    wait_for_health(proc, url, 120)
    try:
        yield openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class LongAnswer:
    """A long streamed answer in a thread, holding the one model; `leave()` closes the
    stream (the client disconnects) after some text arrived."""

    def __init__(self, client: openai.OpenAI, *, leave_after: int | None = None) -> None:
        self.client = client
        self.leave_after = leave_after
        self.text = ""
        self.started = threading.Event()
        self.done = threading.Event()
        self.finish: str | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            stream = self.client.chat.completions.create(
                model="cozy/assistant",
                messages=STORY,  # type: ignore[arg-type]
                stream=True,
                temperature=0,
                max_tokens=400,
            )
            pieces = 0
            for chunk in stream:
                if not chunk.choices:
                    continue
                if chunk.choices[0].delta.content:
                    self.text += chunk.choices[0].delta.content
                    pieces += 1
                    self.started.set()
                self.finish = chunk.choices[0].finish_reason or self.finish
                if self.leave_after is not None and pieces >= self.leave_after:
                    stream.close()  # the client goes away mid-answer
                    return
        finally:
            self.started.set()
            self.done.set()


def _refused(client: openai.OpenAI, *, stream: bool) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as err:
        answer = client.chat.completions.create(
            model="cozy/assistant",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=8,
            stream=stream,
        )
        if stream:  # were it accepted, the error would come inside the stream
            list(answer)  # type: ignore[arg-type]
    return err.value


async def _assistant_rows(home: Path) -> list[MessageRow]:
    async with opened(Settings(home=home), engines=False) as rt:
        rows: list[MessageRow] = []
        for s in await rt.store.list_sessions("local", limit=100):  # --no-auth acts as local
            rows.extend(m for m in await rt.store.list_messages(s.id) if m.role == "assistant")
        return rows


def test_serve_streams_and_a_full_queue_is_503_for_streams_too(
    served: openai.OpenAI, cozy_home: Path
) -> None:
    client = served
    chunks = list(
        client.chat.completions.create(
            model="cozy/assistant",
            messages=[{"role": "user", "content": "What is 2+2?"}],
            stream=True,
            temperature=0,
            max_tokens=16,
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text.strip() and chunks[-1].choices[0].finish_reason in ("stop", "length")

    # one long answer holds the one model (max_queue: 1): the next requests are refused
    # with a status, before any stream starts, and nothing of theirs is saved
    long = LongAnswer(client)
    assert long.started.wait(120) and not long.done.is_set()
    for stream in (True, False):
        err = _refused(client, stream=stream)
        assert err.status_code == 503, (stream, err)
        assert int(err.response.headers["retry-after"]) >= 1
        assert "local model" in err.message and "max_queue" in err.message
        assert err.code == "model_busy"
    assert long.done.wait(300) and long.finish in ("stop", "length")

    # the places went back: the model takes a stream again
    again = client.chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "Say hi."}],
        stream=True,
        temperature=0,
        max_tokens=8,
    )
    assert "".join(c.choices[0].delta.content or "" for c in again if c.choices).strip()
    rows = asyncio.run(_assistant_rows(cozy_home))
    assert sorted(r.status for r in rows) == ["complete"] * 3, [(r.status, r.content) for r in rows]


def test_client_leaving_mid_stream_stops_the_model_and_keeps_the_partial(
    served: openai.OpenAI, cozy_home: Path
) -> None:
    client = served
    long = LongAnswer(client, leave_after=3)
    assert long.done.wait(120) and long.text
    # the generation stops on the disconnect: the one place is free again at once,
    # long before the 400-token answer would have ended
    deadline = time.monotonic() + 60
    while True:
        try:
            answer = client.chat.completions.create(
                model="cozy/assistant",
                messages=[{"role": "user", "content": "Say hi."}],
                max_tokens=8,
                temperature=0,
            )
            break
        except openai.APIStatusError as exc:
            assert exc.status_code == 503
            assert time.monotonic() < deadline, "the model was still busy a minute later"
            time.sleep(0.2)
    assert answer.choices[0].message.content
    rows = asyncio.run(_assistant_rows(cozy_home))
    statuses = sorted(r.status for r in rows)
    assert statuses == ["complete", "interrupted"], [(r.status, r.content) for r in rows]
    partial = next(r for r in rows if r.status == "interrupted")
    assert partial.content and long.text.startswith(partial.content[:10])


def test_client_tools_round_trip_through_serve(served: openai.OpenAI) -> None:
    """A client's own tool, forced with tool_choice: the call comes back as OpenAI
    `tool_calls` (arguments valid for the schema), the client answers it, the model
    goes on in text."""
    import json

    import jsonschema

    params = {
        "type": "object",
        "properties": {"city": {"type": "string"}},
        "required": ["city"],
    }
    tools = [
        {
            "type": "function",
            "function": {
                "name": "get_weather",
                "description": "Weather for a city",
                "parameters": params,
            },
        }
    ]
    messages: list[dict[str, object]] = [{"role": "user", "content": "Weather in Paris?"}]
    first = served.chat.completions.create(
        model="cozy/assistant",
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        temperature=0,
        max_tokens=60,
    )
    assert first.choices[0].finish_reason == "tool_calls", first.model_dump_json()[:2000]
    calls = first.choices[0].message.tool_calls
    assert calls and calls[0].function.name == "get_weather"  # type: ignore[union-attr]
    jsonschema.validate(json.loads(calls[0].function.arguments), params)  # type: ignore[union-attr]
    call = calls[0]
    messages += [
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call.id,
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": call.function.arguments},  # type: ignore[union-attr]
                }
            ],
        },
        {"role": "tool", "tool_call_id": call.id, "content": "Sunny, 21 C"},
    ]
    final = served.chat.completions.create(
        model="cozy/assistant",
        messages=messages,  # type: ignore[arg-type]
        tools=tools,  # type: ignore[arg-type]
        temperature=0,
        max_tokens=40,
    )
    assert final.choices[0].finish_reason in ("stop", "length")
    assert final.choices[0].message.content and not final.choices[0].message.tool_calls
