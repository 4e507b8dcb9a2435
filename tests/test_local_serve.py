"""`cozy serve` answering with the embedded model, through the official `openai` client:
streaming works, and a full queue on the one model answers 503 with Retry-After."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest
from test_server_fixtures import ServerThread, make_keys

from cozy.server.app import create_app
from cozy.server.config import ServerSettings
from cozy.settings import Settings

try:
    import llama_cpp  # noqa: F401
except ImportError:  # CI installs it (install.sh builds it): missing there is a failure
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "llama-cpp-python is not installed (./install.sh builds it)", allow_module_level=True
    )


@pytest.fixture
def served_local(cozy_home: Path) -> Iterator[tuple[str, str]]:
    (cozy_home / "engines.yaml").write_text(
        "ai:\n  provider: local\n  providers:\n    local: {max_queue: 1}\n"
        "memory: {provider: none}\nprofile: {provider: none}\nknowledge: {provider: none}\n",
        encoding="utf-8",
    )
    settings = Settings(home=cozy_home, config=cozy_home / "engines.yaml")
    server = ServerSettings(
        rate_limit_rpm=0,
        rate_limit_tpm=0,
        ip_rate_limit_rpm=0,
        auth_cache_seconds=0.0,
        jwt_secret="test-secret-0123456789-0123456789-abcdef",
    )
    keys = make_keys(settings)
    thread = ServerThread(create_app(settings, server)).start()
    try:
        yield thread.url + "/v1", keys["alice"]
    finally:
        thread.stop()


def test_serve_streams_and_refuses_when_the_queue_is_full(served_local: tuple[str, str]) -> None:
    url, key = served_local
    client = openai.OpenAI(base_url=url, api_key=key, max_retries=0, timeout=120)
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
    # one long answer holds the one model (max_queue: 1): the next request is refused
    started = threading.Event()
    done = threading.Event()

    def long_answer() -> None:
        stream = client.chat.completions.create(
            model="cozy/assistant",
            messages=[{"role": "user", "content": "Write a long story about a dragon."}],
            stream=True,
            temperature=0,
            max_tokens=300,
        )
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                started.set()
        done.set()

    worker = threading.Thread(target=long_answer, daemon=True)
    worker.start()
    assert started.wait(120)
    with pytest.raises(openai.APIStatusError) as err:
        client.chat.completions.create(
            model="cozy/assistant",
            messages=[{"role": "user", "content": "hi"}],
            max_tokens=8,
        )
    assert err.value.status_code == 503
    assert int(err.value.response.headers["retry-after"]) >= 1
    assert "local model" in err.value.message and "max_queue" in err.value.message
    assert done.wait(300)
    worker.join(10)
