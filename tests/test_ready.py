"""`/ready` says whether a chat turn can be answered and stored: an optional provider
that is down is `degraded` in the body (still 200, and chats are answered); the model
being unreachable is not ready (503)."""

from __future__ import annotations

import time
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


def test_model_down_with_the_embedded_fallback_is_ready(cozy_home: Path) -> None:
    """`ai.provider: auto` with no OpenAI and Ollama gone: the embedded model answers,
    so the instance is ready, and says which model that is."""
    pytest.importorskip("llama_cpp", reason="the embedded model needs llama-cpp-python")
    dead = f"http://127.0.0.1:{free_port()}"
    (cozy_home / "engines.yaml").write_text(
        f"ai:\n  provider: auto\n  providers:\n    ollama: {{host: '{dead}'}}\n"
        "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n",
        encoding="utf-8",
    )
    env = {
        k: v
        for k, v in cozy_env(cozy_home).items()
        if k not in ("OPENAI_API_KEY", "OPENAI_BASE_URL")
    }
    inst = Instance(env, None, "--no-auth").start()
    try:
        deadline = time.monotonic() + 180  # the first probe loads the model
        while True:
            ready = httpx.get(inst.url + "/ready", timeout=30)
            if ready.status_code == 200 or time.monotonic() > deadline:
                break
            time.sleep(1)
        body = ready.json()
        assert ready.status_code == 200, body
        assert body["checks"]["model"]["detail"].startswith("local:"), body
        chat = {**CHAT, "max_tokens": 5, "temperature": 0}
        res = httpx.post(f"{inst.url}/v1/chat/completions", json=chat, timeout=180)
        assert res.status_code == 200, res.text
        assert res.json()["model"] == "cozy/assistant"
    finally:
        inst.stop()
