"""Bad input, observability (request id, access log, metrics), disconnects, health."""

from __future__ import annotations

import json
import logging
import time

import httpx
import pytest
from server_fixtures import Served, served_fixture  # noqa: F401 - fixture

from cozy.storage.store import Store

URL = "/chat/completions"


def _err(r: httpx.Response, status: int) -> dict[str, object]:
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    return err


def _count_messages(s: Served) -> int:
    async def count(store: Store) -> int:
        total = 0
        for user in ("alice", "bob", "root"):
            for sess in await store.list_sessions(user):
                total += len(await store.list_messages(sess.id))
        return total

    return int(s.store_call(count))


def test_bad_input_is_4xx_openai_error_and_writes_nothing(served: Served) -> None:
    h = {**served.headers(), "Content-Type": "application/json"}
    user = [{"role": "user", "content": "hi"}]
    cases: list[tuple[bytes, int, str | None]] = [
        (b"{not json", 400, None),
        (b"\xff\xfe\x00garbage", 400, None),
        (json.dumps({"model": "cozy", "messages": "hi"}).encode(), 400, "messages"),
        (json.dumps({"model": 5, "messages": user}).encode(), 400, "model"),
        (json.dumps({"model": "cozy", "messages": []}).encode(), 400, "messages"),
        (json.dumps({"model": "cozy", "messages": user, "max_tokens": 10**12}).encode(), 400, None),
        (json.dumps({"model": "cozy", "messages": user, "n": 17}).encode(), 400, "n"),
        (json.dumps({"model": "cozy", "messages": user, "temperature": 9}).encode(), 400, None),
        (
            json.dumps(
                {"model": "cozy", "messages": [{"role": "wizard", "content": "x"}]}
            ).encode(),
            400,
            None,
        ),
        (
            json.dumps(
                {"model": "cozy", "messages": [{"role": "system", "content": "x"}]}
            ).encode(),
            400,
            "messages",
        ),
        (json.dumps({"model": "cozy/nope", "messages": user}).encode(), 404, "model"),
        (b"x" * (5 * 1024 * 1024), 413, None),
    ]
    with httpx.Client(base_url=served.base_url, headers=h) as c:
        for raw, status, param in cases:
            err = _err(c.post(URL, content=raw), status)
            if param:
                assert str(err["param"]).startswith(param), (raw[:60], err)
            assert "Traceback" not in str(err["message"])
        err = _err(
            c.post(URL, json={"model": "cozy", "messages": user}, headers={"X-Cozy-Session": "x"}),
            404,
        )
        assert "no session" in str(err["message"])
        _err(c.get("/no/such/route"), 404)
        # streaming requests fail before the stream starts, with a real status
        r = c.post(
            URL,
            json={"model": "cozy", "stream": True, "messages": user},
            headers={"X-Cozy-Session": "ses_missing"},
        )
        _err(r, 404)
    assert served.fake.chat_requests() == []
    assert _count_messages(served) == 0


def test_request_id_access_log_and_metrics(
    served: Served, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="cozy.access")
    with httpx.Client(base_url=served.url, headers=served.headers()) as c:
        r = c.post(
            "/v1" + URL,
            json={"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]},
            headers={"X-Request-ID": "my-trace-123"},
        )
        assert r.status_code == 200
        assert r.headers["x-request-id"] == "my-trace-123"
        assert r.json()["id"] == "chatcmpl-my-trace-123"
        bad = c.get("/health", headers={"X-Request-ID": "bad id with spaces"})
        assert bad.headers["x-request-id"].startswith("req-")
        assert c.get("/v1/nope").headers["x-request-id"].startswith("req-")
        metrics = c.get("/metrics").text
    assert 'chat_requests_total{model="cozy/assistant",status="ok",stream="false"} 1.0' in metrics
    assert "chat_latency_seconds_bucket" in metrics
    for name in ("engine_calls_total", "tool_calls_total", "realtime_sessions_active"):
        assert name in metrics
    records = [
        r
        for r in caplog.records
        if r.name == "cozy.access" and getattr(r, "request_id", None) == "my-trace-123"
    ]
    assert len(records) == 1
    rec = records[0].__dict__
    assert rec["route"] == "/v1/chat/completions" and rec["status"] == 200
    assert rec["user_id"] == "alice" and rec["session_id"].startswith("ses_")
    assert rec["personality_id"] == "assistant" and rec["latency_ms"] > 0
    assert isinstance(rec["engines"], dict)
    # the key never reaches the log
    from cozy.observability.logging import JsonFormatter

    line = JsonFormatter().format(records[0])
    assert served.keys["alice"] not in line and json.loads(line)["status"] == 200


def test_health_ready_and_openapi(served: Served) -> None:
    with httpx.Client(base_url=served.url) as c:
        assert c.get("/health").json() == {"status": "ok"}
        ready = c.get("/ready")
        assert ready.status_code == 200 and ready.json()["checks"]["store"]["ok"] is True
        schema = c.get("/schema/openapi.json").json()
        assert "/v1/chat/completions" in schema["paths"]
        assert "/v1/chat/sessions" in schema["paths"]


def test_disconnect_mid_stream_saves_interrupted(served: Served) -> None:
    served.fake.tokens_per_second = 20
    served.fake.queue_reply(" ".join(f"word{i}" for i in range(200)))
    got = []
    with (
        httpx.Client(base_url=served.base_url, headers=served.headers(), timeout=10) as c,
        c.stream(
            "POST",
            URL,
            json={
                "model": "cozy/assistant",
                "stream": True,
                "messages": [{"role": "user", "content": "talk a lot"}],
            },
        ) as r,
    ):
        sid = r.headers["x-cozy-session"]
        for line in r.iter_lines():
            if line.startswith("data: {"):
                got.append(line)
            if len(got) >= 5:
                break
    # the connection is closed: the turn must be cancelled and saved as interrupted

    async def last(store: Store) -> tuple[str, str] | None:
        rows = await store.list_messages(sid)
        return (rows[-1].role, rows[-1].status) if len(rows) > 1 else None

    deadline = time.monotonic() + 30
    state = None
    while time.monotonic() < deadline:
        state = served.store_call(last)
        if state is not None:
            break
        time.sleep(0.1)
    assert state == ("assistant", "interrupted")

    async def content(store: Store) -> str:
        return (await store.list_messages(sid))[-1].content

    partial = served.store_call(content)
    assert partial.startswith("word0") and "word199" not in partial
    n = len(served.fake.turn_requests())  # background jobs may still call the model
    time.sleep(0.3)
    assert len(served.fake.turn_requests()) == n
