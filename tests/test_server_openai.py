"""`cozy serve` through the official openai client (sync and async, streaming and not)."""

from __future__ import annotations

import json

import httpx
import openai
import pytest
from server_fixtures import Served, served_fixture  # noqa: F401 - the fixture

from cozy.storage.store import Store


def client(s: Served, who: str = "alice") -> openai.OpenAI:
    return openai.OpenAI(base_url=s.base_url, api_key=s.keys[who], max_retries=0)


def aclient(s: Served, who: str = "alice") -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=s.base_url, api_key=s.keys[who], max_retries=0)


def test_chat_non_streaming_saves_the_turn(served: Served) -> None:
    served.fake.queue_reply("Paris is the capital of France.")
    raw = client(served).chat.completions.with_raw_response.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "Capital of France?"}],
    )
    completion = raw.parse()
    assert completion.object == "chat.completion"
    assert completion.model == "cozy/assistant"
    assert completion.choices[0].message.content == "Paris is the capital of France."
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.completion_tokens > 0
    session_id = raw.headers["x-cozy-session"]
    assert raw.headers["x-request-id"].startswith("req-")

    async def rows(store: Store) -> list[tuple[str, str, str]]:
        s = await store.get_session(session_id, user_id="alice")
        assert s.personality_id == "assistant"
        return [(m.role, m.status, m.content) for m in await store.list_messages(session_id)]

    assert served.store_call(rows) == [
        ("user", "complete", "Capital of France?"),
        ("assistant", "complete", "Paris is the capital of France."),
    ]


def test_chat_streaming_chunks_usage_and_done(served: Served) -> None:
    served.fake.queue_reply("one two three four")
    stream = client(served).chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "count"}],
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "one two three four"
    finals = [c for c in chunks if c.choices and c.choices[0].finish_reason]
    assert [c.choices[0].finish_reason for c in finals] == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage is not None
    assert chunks[-1].usage.total_tokens > 0
    assert len({c.id for c in chunks}) == 1
    # the raw body ends with [DONE]
    served.fake.queue_reply("x")
    body = httpx.post(
        served.base_url + "/chat/completions",
        headers=served.headers(),
        json={"model": "cozy", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
        timeout=60,
    ).text
    assert body.rstrip().endswith("data: [DONE]")


async def test_async_client_streaming_and_not(served: Served) -> None:
    c = aclient(served)
    served.fake.queue_reply("async hello")
    done = await c.chat.completions.create(
        model="cozy/assistant", messages=[{"role": "user", "content": "hi"}]
    )
    assert done.choices[0].message.content == "async hello"
    served.fake.queue_reply("streamed async hello")
    stream = await c.chat.completions.create(
        model="cozy/assistant", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    parts = [ch.choices[0].delta.content or "" async for ch in stream if ch.choices]
    assert "".join(parts) == "streamed async hello"
    await c.close()


WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "weather for a city",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}


def test_client_side_tools_are_returned_as_tool_calls(served: Served) -> None:
    served.fake.add_rule(tool_offered="get_weather", tool_calls=[("get_weather", {"city": "Oslo"})])
    c = client(served)
    done = c.chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    choice = done.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "get_weather"  # type: ignore[union-attr]
    assert json.loads(call.function.arguments) == {"city": "Oslo"}  # type: ignore[union-attr]
    sent = served.fake.turn_requests()[-1].body
    names = [t["function"]["name"] for t in sent["tools"]]
    assert names[-1] == "get_weather" and "builtin__now" in names  # with cozy's own tools
    # streaming: tool_calls[].index is always present
    stream = c.chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
        stream=True,
    )
    chunks = list(stream)
    calls = [tc for ch in chunks if ch.choices for tc in (ch.choices[0].delta.tool_calls or [])]
    assert [(tc.index, tc.function.name) for tc in calls] == [(0, "get_weather")]  # type: ignore[union-attr]
    assert [ch.choices[0].finish_reason for ch in chunks if ch.choices][-1] == "tool_calls"


def test_client_sends_tool_results_back_and_gets_the_answer(served: Served) -> None:
    served.fake.add_rule(tool_offered="get_weather", tool_calls=[("get_weather", {"city": "Oslo"})])
    c = client(served)
    first = c.chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "weather in Oslo?"}],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    served.fake.queue_reply("It is 21 degrees and sunny in Oslo.")
    second = c.chat.completions.create(
        model="cozy/assistant",
        messages=[
            {"role": "user", "content": "weather in Oslo?"},
            first.choices[0].message.model_dump(exclude_none=True),  # type: ignore[list-item]
            {"role": "tool", "tool_call_id": call.id, "content": '{"temp": 21, "sky": "sunny"}'},
        ],
        tools=[WEATHER],  # type: ignore[list-item]
    )
    assert second.choices[0].message.content == "It is 21 degrees and sunny in Oslo."
    sent = served.fake.turn_requests()[-1].body["messages"]
    assert [m["role"] for m in sent[-3:]] == ["user", "assistant", "tool"]
    assert '"temp": 21' in sent[-1]["content"]
    bad = c.with_options(max_retries=0).chat.completions.with_raw_response
    try:
        bad.create(
            model="cozy/assistant",
            messages=[{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}],
        )
    except openai.BadRequestError as exc:
        assert "tool result" in str(exc)
    else:  # pragma: no cover - the request must be refused
        raise AssertionError("an assistant-last conversation was accepted")


def test_stateless_history_and_bound_session(served: Served) -> None:
    c = client(served)
    c.chat.completions.create(
        model="cozy/assistant",
        messages=[
            {"role": "system", "content": "Answer in French."},
            {"role": "user", "content": "first question"},
            {"role": "assistant", "content": "first answer"},
            {"role": "user", "content": "second question"},
        ],
    )
    sent = served.fake.turn_requests()[-1].body["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert "Answer in French." in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == ["first question", "first answer", "second question"]
    # bound: the header picks a stored session; cozy's history is used
    raw = c.chat.completions.with_raw_response.create(
        model="cozy/assistant", messages=[{"role": "user", "content": "remember: blue"}]
    )
    sid = raw.headers["x-cozy-session"]
    raw2 = c.chat.completions.with_raw_response.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "what colour?"}],
        extra_headers={"X-Cozy-Session": sid},
    )
    assert raw2.headers["x-cozy-session"] == sid
    sent = served.fake.turn_requests()[-1].body["messages"]
    assert sent[1]["content"] == "remember: blue"
    assert sent[-1]["content"] == "what colour?"
    # metadata binds too
    c.chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": "third"}],
        metadata={"cozy_session": sid},
    )
    assert len(served.fake.turn_requests()[-1].body["messages"]) == 6


def test_models_lists_personalities_and_provider_models(served: Served) -> None:
    ids = [m.id for m in client(served).models.list()]
    assert "cozy/assistant" in ids and "cozy/coder" in ids and "cozy" in ids
    assert any(i.startswith("ollama:") for i in ids)
    assert client(served).models.retrieve("cozy/coder").id == "cozy/coder"
    with pytest.raises(openai.NotFoundError):
        client(served).models.retrieve("cozy/nope")


def test_raw_model_goes_to_the_provider(served: Served) -> None:
    done = client(served).chat.completions.create(
        model="openai:gpt-test", messages=[{"role": "user", "content": "hello"}]
    )
    assert done.model == "openai:gpt-test"
    assert served.fake.turn_requests()[-1].path == "/v1/chat/completions"
    assert served.fake.turn_requests()[-1].body["model"] == "gpt-test"


def test_response_format_is_passed_to_the_model(served: Served) -> None:
    schema = {
        "type": "object",
        "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
        "required": ["name", "age"],
    }
    done = client(served).chat.completions.create(
        model="openai:gpt-test",
        messages=[{"role": "user", "content": "a person"}],
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "person", "schema": schema},
        },
    )
    data = json.loads(done.choices[0].message.content or "")
    assert set(data) >= {"name", "age"}
    assert served.fake.turn_requests()[-1].body["response_format"]["type"] == "json_schema"


async def test_served_turns_run_their_background_jobs(served: Served) -> None:
    """`cozy serve` runs the jobs its turns queue (memory extraction) without `jobs run`."""
    import asyncio

    from cozy.storage.job_queue import JobQueue
    from cozy.storage.store import Store

    c = client(served)
    c.chat.completions.create(
        model="cozy/assistant", messages=[{"role": "user", "content": "my dog is called Rex"}]
    )
    store = await Store.open(served.settings.db_url)
    try:
        jobs = JobQueue(store)
        kinds: list[str] = []
        for _ in range(1200):  # ~60 s; the profile job is buffered (due later): wait for memory's
            kinds = [j.kind for j in await jobs.list(status="done")]
            if any(k.startswith("memory") for k in kinds):
                break
            await asyncio.sleep(0.05)
        assert any(k.startswith("memory") for k in kinds), await jobs.counts()
        assert (await jobs.counts())["failed"] == 0
    finally:
        await store.close()


def test_image_parts_reach_the_model_and_bad_ones_are_400(served: Served) -> None:
    import base64

    gif = base64.b64encode(b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;").decode()
    url = f"data:image/gif;base64,{gif}"
    client(served).chat.completions.create(
        model="openai:gpt-test",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": "what is this?"},
                    {"type": "image_url", "image_url": {"url": url}},
                ],
            }
        ],
    )
    sent = served.fake.turn_requests()[-1].body["messages"][-1]["content"]
    assert sent == [
        {"type": "text", "text": "what is this?"},
        {"type": "image_url", "image_url": {"url": url}},
    ]
    with pytest.raises(openai.BadRequestError) as bad:
        client(served).chat.completions.create(
            model="openai:gpt-test",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "text", "text": "and this?"},
                        {"type": "image_url", "image_url": {"url": "https://x.test/a.png"}},
                    ],
                }
            ],
        )
    assert "data URL" in str(bad.value)


def test_file_parts_reach_the_model_and_are_stored_once(served: Served) -> None:
    """OpenAI `file` content parts (inline file_data): text, read back whole from the
    session API and a bound session's history; the same file twice kept once."""
    import base64

    from cozy.storage.fragments import Fragments

    plan = "# Plan\nthe deadline is March 3\n"
    data = "data:text/markdown;base64," + base64.b64encode(plan.encode()).decode()
    part = {"type": "file", "file": {"filename": "plan.md", "file_data": data}}
    whole = "plan.md:\n```\n# Plan\nthe deadline is March 3\n```\n\nwhen is the deadline?"
    c = client(served)
    served.fake.queue_reply("March 3")
    raw = c.chat.completions.with_raw_response.create(
        model="cozy/assistant",
        messages=[
            {
                "role": "user",
                "content": [{"type": "text", "text": "when is the deadline?"}, part],
            }
        ],
    )
    sid = raw.headers["x-cozy-session"]
    assert served.fake.turn_requests()[-1].body["messages"][-1]["content"] == whole

    # the session API reads the question back as the model saw it
    listed = httpx.get(
        f"{served.base_url}/chat/sessions/{sid}/messages",
        headers={"Authorization": f"Bearer {served.keys['alice']}"},
        timeout=10,
    ).json()["data"]
    assert [m["content"] for m in listed] == [whole, "March 3"]

    # a bound session's next turn sends it again; the same file in another turn is
    # linked to the text already kept
    served.fake.queue_reply("yes")
    c.chat.completions.create(
        model="cozy/assistant",
        messages=[{"role": "user", "content": [{"type": "text", "text": "sure?"}, part]}],
        extra_headers={"X-Cozy-Session": sid},
    )
    sent = served.fake.turn_requests()[-1].body["messages"]
    assert [m["content"] for m in sent[1:]] == [
        whole,
        "March 3",
        "plan.md:\n```\n# Plan\nthe deadline is March 3\n```\n\nsure?",
    ]

    async def kept(store: Store) -> list[tuple[str, int, int]]:
        return [(f.source, f.size, f.messages) for f in await Fragments(store).list()]

    assert served.store_call(kept) == [("plan.md", len(plan), 2)]

    # a client that owns the history sends the file in an earlier message: seen there
    c.chat.completions.create(
        model="cozy/assistant",
        messages=[
            {"role": "user", "content": [part, {"type": "text", "text": "when is the deadline?"}]},
            {"role": "assistant", "content": "March 3"},
            {"role": "user", "content": "thanks"},
        ],
    )
    sent = served.fake.turn_requests()[-1].body["messages"]
    assert [m["content"] for m in sent[1:]] == [whole, "March 3", "thanks"]

    # what cozy cannot take says why and how
    for bad, words in (
        ({"type": "file", "file": {"file_id": "file-abc123"}}, "file_data"),
        (
            {"type": "file", "file": {"filename": "x.gif", "file_data": "R0lGODlhAQABAAAAADs="}},
            "image_url",
        ),
        ({"type": "file", "file": {"filename": "x.txt", "file_data": "%%%"}}, "base64"),
    ):
        with pytest.raises(openai.BadRequestError) as refused:
            c.chat.completions.create(
                model="cozy/assistant",
                messages=[{"role": "user", "content": [{"type": "text", "text": "hi"}, bad]}],
            )
        assert words in str(refused.value)
