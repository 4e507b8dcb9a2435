"""`/ready` says whether a chat turn can be answered and stored: an optional provider
that is down is `degraded` in the body (still 200, and chats are answered); the model
being unreachable is not ready (503)."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from helpers import write_engines
from pg_redis_helpers import Instance, cozy_env, free_port

from cozy.testing import FakeModelServer

CHAT = {"model": "cozy/assistant", "messages": [{"role": "user", "content": "hi"}]}


def test_optional_provider_down_is_degraded_not_unready(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    pytest.importorskip("memobase", reason="needs the memobase extra")
    dead = f"http://127.0.0.1:{free_port()}"
    write_engines(
        cozy_home, fake_model.url, f"profile: {{provider: memobase, url: '{dead}', api_key: k}}\n"
    )
    inst = Instance(cozy_env(cozy_home), None, "--no-auth").start()
    try:
        ready = httpx.get(inst.url + "/ready", timeout=30)
        body = ready.json()
        assert ready.status_code == 200, body
        assert body["status"] == "ready" and body["degraded"] == ["profile"]
        assert body["checks"]["store"]["ok"] and body["checks"]["store"]["required"]
        assert body["checks"]["model"]["ok"] and not body["checks"]["profile"]["required"]
        for _ in range(3):  # and chats are answered meanwhile
            res = httpx.post(f"{inst.url}/v1/chat/completions", json=CHAT, timeout=60)
            assert res.status_code == 200, res.text
    finally:
        inst.stop()


def test_unreachable_model_is_not_ready(cozy_home: Path) -> None:
    write_engines(cozy_home, f"http://127.0.0.1:{free_port()}")
    inst = Instance(cozy_env(cozy_home), None, "--no-auth").start()
    try:
        ready = httpx.get(inst.url + "/ready", timeout=30)
        body = ready.json()
        assert ready.status_code == 503, body
        assert body["status"] == "not_ready" and not body["checks"]["model"]["ok"]
        assert "not reachable" in body["checks"]["model"]["detail"]
        assert body["checks"]["model"]["fix"]
        assert body["checks"]["store"]["ok"]
    finally:
        inst.stop()
