"""The remote embedding providers against the fake model server, through the real SDKs."""

from __future__ import annotations

import math
import socket

import pytest

from cozy.core.errors import (
    ModelAuthError,
    ModelError,
    ModelNotFound,
    ModelRateLimited,
    ModelUnreachableError,
)
from cozy.engines.embed.ollama_embed import OllamaEmbedder
from cozy.engines.embed.openai_embed import OpenAIEmbedder
from cozy.engines.registry import registry
from cozy.testing.server import FakeModelServer
from cozy.testing.synth import embed_text

TEXTS = ["the cat sat", "a dog barked", "the cat slept", "rain in spain", "hello"]


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def close_to(got: list[float], want: list[float]) -> bool:
    return len(got) == len(want) and all(
        math.isclose(a, b, abs_tol=1e-6) for a, b in zip(got, want, strict=True)
    )


def embed_requests(fake: FakeModelServer, path: str) -> list[dict[str, object]]:
    return [r.body for r in fake.requests if r.path == path]


def test_entry_points() -> None:
    assert registry.get("embed", "openai") is OpenAIEmbedder
    assert registry.get("embed", "ollama") is OllamaEmbedder
    assert {"local", "openai", "ollama"} <= set(registry.providers("embed"))


# -- OpenAI ------------------------------------------------------------------------


def openai_embedder(fake: FakeModelServer, **options: object) -> OpenAIEmbedder:
    opts: dict[str, object] = {"base_url": fake.openai_base_url, "model": "fake-embed"}
    opts.update(options)
    return OpenAIEmbedder(opts)


async def test_openai_embeds_in_order_and_batches(fake_model: FakeModelServer) -> None:
    emb = openai_embedder(fake_model, batch_size=2)
    vectors = await emb.embed(TEXTS)
    assert len(vectors) == len(TEXTS)
    for text, vec in zip(TEXTS, vectors, strict=True):
        assert close_to(vec, embed_text(text, 384))
    bodies = embed_requests(fake_model, "/v1/embeddings")
    assert [b["input"] for b in bodies] == [TEXTS[0:2], TEXTS[2:4], TEXTS[4:5]]
    assert all(b["model"] == "fake-embed" and b["encoding_format"] == "float" for b in bodies)
    assert all("dimensions" not in b for b in bodies)
    assert emb.dimensions == 384
    await emb.close()
    await emb.close()  # safe twice


async def test_openai_empty_input_makes_no_request(fake_model: FakeModelServer) -> None:
    assert await openai_embedder(fake_model).embed([]) == []
    assert embed_requests(fake_model, "/v1/embeddings") == []


async def test_openai_dimensions_option(fake_model: FakeModelServer) -> None:
    emb = openai_embedder(fake_model, dimensions=64)
    assert emb.dimensions == 64
    (vec,) = await emb.embed(["short"])
    assert len(vec) == 64
    assert embed_requests(fake_model, "/v1/embeddings")[0]["dimensions"] == 64


async def test_openai_env_base_url_and_key(
    fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    fake_model.api_key = "sk-cozy-test"
    monkeypatch.setenv("OPENAI_BASE_URL", fake_model.openai_base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-cozy-test")
    emb = OpenAIEmbedder({"model": "fake-embed"})
    assert len((await emb.embed(["hi"]))[0]) == 384
    (req,) = [r for r in fake_model.requests if r.path == "/v1/embeddings"]
    assert req.headers["authorization"] == "Bearer sk-cozy-test"


async def test_openai_wrong_key(fake_model: FakeModelServer) -> None:
    fake_model.api_key = "sk-right"
    emb = openai_embedder(fake_model, api_key="sk-wrong")
    with pytest.raises(ModelAuthError) as info:
        await emb.embed(["hi"])
    assert "OPENAI_API_KEY" in str(info.value)


def test_openai_without_key_for_openai_itself() -> None:
    emb = OpenAIEmbedder({})
    with pytest.raises(ModelAuthError, match="OPENAI_API_KEY"):
        emb._get_client()


async def test_openai_unknown_model(fake_model: FakeModelServer) -> None:
    fake_model.strict_models = True
    emb = openai_embedder(fake_model, model="nope-embed")
    with pytest.raises(ModelNotFound) as info:
        await emb.embed(["hi"])
    assert "embed.options.model" in str(info.value)
    health = await emb.health_check()
    assert not health.ok and "embed.options.model" in health.fix


async def test_openai_rate_limit_and_server_error(fake_model: FakeModelServer) -> None:
    emb = openai_embedder(fake_model, max_retries=0)
    fake_model.fail_next(429, path="/v1/embeddings")
    with pytest.raises(ModelRateLimited):
        await emb.embed(["hi"])
    fake_model.fail_next(500, path="/v1/embeddings", message="boom")
    with pytest.raises(ModelError, match="500"):
        await emb.embed(["hi"])


async def test_openai_retries_a_transient_failure(fake_model: FakeModelServer) -> None:
    emb = openai_embedder(fake_model, max_retries=2)
    fake_model.fail_next(503, path="/v1/embeddings", retry_after=0.01)
    assert len(await emb.embed(["hi"])) == 1


async def test_openai_dropped_connection(fake_model: FakeModelServer) -> None:
    emb = openai_embedder(fake_model, max_retries=0)
    fake_model.fail_next(path="/v1/embeddings", drop=True)
    with pytest.raises(ModelUnreachableError):
        await emb.embed(["hi"])


async def test_openai_unreachable() -> None:
    emb = OpenAIEmbedder({"base_url": closed_port_url() + "/v1", "max_retries": 0})
    with pytest.raises(ModelUnreachableError) as info:
        await emb.embed(["hi"])
    assert "embed.options.base_url" in str(info.value)
    health = await emb.health_check()
    assert not health.ok and "base_url" in health.fix


async def test_openai_health_ok(fake_model: FakeModelServer) -> None:
    health = await openai_embedder(fake_model).health_check()
    assert health.ok and "384" in health.detail


# -- Ollama ------------------------------------------------------------------------


def ollama_embedder(fake: FakeModelServer, **options: object) -> OllamaEmbedder:
    opts: dict[str, object] = {"host": fake.url, "model": "fake-embed"}
    opts.update(options)
    return OllamaEmbedder(opts)


async def test_ollama_embeds_in_order_and_batches(fake_model: FakeModelServer) -> None:
    emb = ollama_embedder(fake_model, batch_size=3)
    vectors = await emb.embed(TEXTS)
    for text, vec in zip(TEXTS, vectors, strict=True):
        assert close_to(vec, embed_text(text, 384))
    bodies = embed_requests(fake_model, "/api/embed")
    assert [b["input"] for b in bodies] == [TEXTS[0:3], TEXTS[3:5]]
    assert all(b["model"] == "fake-embed" for b in bodies)
    assert emb.dimensions == 384
    await emb.close()
    await emb.close()


async def test_ollama_empty_input(fake_model: FakeModelServer) -> None:
    assert await ollama_embedder(fake_model).embed([]) == []
    assert embed_requests(fake_model, "/api/embed") == []


async def test_ollama_dimensions_and_env_host(
    fake_model: FakeModelServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OLLAMA_HOST", fake_model.url)
    emb = OllamaEmbedder({"model": "fake-embed", "dimensions": 32})
    (vec,) = await emb.embed(["hello there"])
    assert len(vec) == 32
    assert embed_requests(fake_model, "/api/embed")[0]["dimensions"] == 32


async def test_ollama_unknown_model(fake_model: FakeModelServer) -> None:
    fake_model.strict_models = True
    emb = ollama_embedder(fake_model, model="nope-embed")
    with pytest.raises(ModelNotFound) as info:
        await emb.embed(["hi"])
    assert "ollama pull nope-embed" in str(info.value)


async def test_ollama_server_error(fake_model: FakeModelServer) -> None:
    fake_model.fail_next(500, path="/api/embed", message="boom")
    with pytest.raises(ModelError, match="boom"):
        await ollama_embedder(fake_model).embed(["hi"])


async def test_ollama_unreachable() -> None:
    emb = OllamaEmbedder({"host": closed_port_url()})
    with pytest.raises(ModelUnreachableError) as info:
        await emb.embed(["hi"])
    assert "ollama serve" in str(info.value)
    health = await emb.health_check()
    assert not health.ok and "embed.options.host" in health.fix


async def test_ollama_health_ok(fake_model: FakeModelServer) -> None:
    health = await ollama_embedder(fake_model).health_check()
    assert health.ok, health.detail
