"""The fused onnxruntime graph of all-MiniLM-L6-v2 (Attention, SkipLayerNormalization,
BiasGelu contrib ops) gives the same embeddings as the plain-op graph and the numpy
forward pass, on ~100 varied texts: short and long (truncated), code, numbers,
non-Latin scripts, emoji, whitespace. The fused graph is the default onnx backend, so
this is what every local embedding goes through."""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest

from cozy.engines.embed import minilm_onnx, model_files
from cozy.engines.embed.errors import EmbeddingUnavailable

FIXTURE = Path(__file__).parent / "fixtures" / "minilm_reference.json"


def _model_dir() -> Path | None:
    try:
        return model_files.locate(verify=False).directory
    except EmbeddingUnavailable:
        return None


MODEL_DIR = _model_dir()
pytestmark = pytest.mark.skipif(
    MODEL_DIR is None or not minilm_onnx.available(),
    reason="all-MiniLM-L6-v2 or onnxruntime not installed (run ./install.sh)",
)

WORDS = ["memory", "engine", "ranks", "turns", "by", "recall", "and", "the", "knowledge"]
WORDS += ["chunks", "markdown", "files", "into", "passages", "before", "embedding"]
ODD = [
    "",
    " ",
    "a",
    "?!",
    "1234567890",
    "3.14159 2.71828 -1e-9",
    "Straße, naïve café — déjà vu",
    "東京で寿司を食べました。",
    "Москва — столица России.",
    "مرحبا بالعالم",
    "🙂🚀 emoji in between 🎉 words",
    "def f(x: int) -> int:\n    return x * 2  # double",
    "SELECT id, name FROM users WHERE age > 30 ORDER BY name;",
    "https://example.com/path?q=1&r=two#frag",
    "ALL CAPS SHOUTING TEXT HERE",
    "tab\tseparated\tvalues\nand\nnew lines",
    "word " * 400,  # far past 256 tokens: truncated
]


def varied_texts() -> list[str]:
    """About 100 texts, deterministic: the reference sentences, odd inputs, and generated
    prose of 1 to ~300 words (so batches pad, and some truncate)."""
    rng = random.Random(23)
    texts = list(json.loads(FIXTURE.read_text(encoding="utf-8"))["sentences"]) + ODD
    while len(texts) < 100:
        n = rng.choice([1, 3, 8, 20, 50, 120, 300])
        texts.append(" ".join(rng.choice(WORDS) for _ in range(n)).capitalize() + ".")
    return texts


@pytest.fixture(scope="module")
def model() -> Any:
    from cozy.engines.embed.minilm import MiniLM

    assert MODEL_DIR is not None
    # the numpy backend keeps the layer weights, so every forward pass can be built on it
    return MiniLM(MODEL_DIR / "model.safetensors", MODEL_DIR / "tokenizer.json", backend="numpy")


def _encode(model: Any, forward: Any, texts: list[str]) -> Any:
    model.onnx = forward
    try:
        return model.encode(texts, batch_size=16)
    finally:
        model.onnx = None


def _assert_close(got: Any, want: Any) -> None:
    import numpy as np

    assert got.shape == want.shape == (100, 384)
    diff = np.abs(got - want).max()
    assert diff < 1e-4, f"max abs difference {diff:.2e}"
    cosines = (got * want).sum(axis=1) / (
        np.linalg.norm(got, axis=1) * np.linalg.norm(want, axis=1)
    )
    assert cosines.min() > 0.9999, f"lowest cosine {cosines.min():.6f}"


def test_fused_graph_matches_plain_graph_and_numpy(model: Any) -> None:
    texts = varied_texts()
    assert len(texts) == 100
    fused = _encode(model, minilm_onnx.OnnxForward(model, threads=1), texts)
    plain = _encode(model, minilm_onnx.OnnxForward(model, threads=1, fused=False), texts)
    reference = _encode(model, None, texts)  # the numpy forward pass
    _assert_close(fused, plain)
    _assert_close(fused, reference)


def test_fused_hidden_states_match_on_a_padded_batch(model: Any) -> None:
    """Before pooling: every real token's hidden state, with padding in the batch (the
    mask path of the Attention op), agrees with the plain graph."""
    import numpy as np

    ids = model.tokenize(["short one", "a somewhat longer sentence " * 20, "中文 text"])
    length = max(len(x) for x in ids)
    batch = np.zeros((3, length), dtype=np.int64)
    mask = np.zeros((3, length), dtype=np.int64)
    for row, seq in enumerate(ids):
        batch[row, : len(seq)] = seq
        mask[row, : len(seq)] = 1
    fused = minilm_onnx.OnnxForward(model, threads=1)(batch, mask)
    plain = minilm_onnx.OnnxForward(model, threads=1, fused=False)(batch, mask)
    real = mask.astype(bool)
    assert np.abs(fused[real] - plain[real]).max() < 1e-4
