"""`embed.options.precision: int8`: onnxruntime's dynamic int8 quantisation of the fused
all-MiniLM-L6-v2 graph. Its vectors stay close to the fp32 ones on 120 varied texts
(lowest and mean cosine), neighbours among those texts stay the same, and the quantised
graph is cached in the models directory under the hash of the fp32 graph it came from."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest
from test_embed_onnx_fused import MODEL_DIR, WORDS, varied_texts

from cozy.core.errors import ConfigError
from cozy.engines.embed import minilm_onnx
from cozy.engines.embed.local import LocalEmbedder

needs_model = pytest.mark.skipif(
    MODEL_DIR is None or not minilm_onnx.available(),
    reason="all-MiniLM-L6-v2 or onnxruntime not installed (run ./install.sh)",
)


def texts_120() -> list[str]:
    """The fused-graph test's 100 texts and 20 more sentences of 5 to 200 words."""
    rng = random.Random(8)
    extra = [" ".join(rng.choice(WORDS) for _ in range(rng.randint(5, 200))) for _ in range(20)]
    return varied_texts() + extra


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh models directory: the first int8 load of the module quantises into it."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="module")
def vectors(models: Path) -> tuple[Any, Any]:
    """(fp32, int8) embeddings of `texts_120()`."""
    from cozy.engines.embed.minilm import MiniLM

    assert MODEL_DIR is not None
    files = (MODEL_DIR / "model.safetensors", MODEL_DIR / "tokenizer.json")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("COZY_MODELS_DIR", str(models))
        int8 = MiniLM(*files, backend="onnx", threads=1, int8=True)
    fp32 = MiniLM(*files, backend="onnx", threads=1)
    texts = texts_120()
    return fp32.encode(texts, batch_size=8), int8.encode(texts, batch_size=8)


@needs_model
def test_int8_vectors_stay_close_to_fp32(vectors: tuple[Any, Any]) -> None:
    fp32, int8 = vectors
    assert fp32.shape == int8.shape == (120, 384)
    cosines = (fp32 * int8).sum(axis=1)  # both unit length
    # measured 0.960 / 0.990 (the lowest: "?!", four tokens, where one rounding weighs most)
    assert cosines.min() > 0.95, f"lowest cosine {cosines.min():.4f}"
    assert cosines.mean() > 0.985, f"mean cosine {cosines.mean():.4f}"


@needs_model
def test_int8_keeps_each_texts_nearest_neighbours(vectors: tuple[Any, Any]) -> None:
    """Retrieval among the 120 texts: each one's top 5 others, int8 against fp32. Many
    generated texts are near-ties (random words of one small vocabulary), so the first
    place flips for some; the fp32 first stays near the top. Measured: first place
    kept for 85%, fp32's first in int8's top 3 for 97.5%, top-5 overlap 86%."""
    import numpy as np

    def top5(v: Any) -> Any:
        sims = v @ v.T
        np.fill_diagonal(sims, -2)
        return np.argsort(-sims, axis=1)[:, :5]

    fp32, int8 = (top5(v) for v in vectors)
    same_first = (fp32[:, 0] == int8[:, 0]).mean()
    in_top3 = np.mean([a[0] in b[:3] for a, b in zip(fp32, int8, strict=True)])
    overlap = np.mean([len(set(a) & set(b)) / 5 for a, b in zip(fp32, int8, strict=True)])
    assert same_first >= 0.8, f"nearest neighbour kept for {same_first:.0%}"
    assert in_top3 >= 0.95, f"fp32's nearest in int8's top 3 for {in_top3:.0%}"
    assert overlap >= 0.8, f"top-5 overlap {overlap:.0%}"


@needs_model
async def test_int8_embedder_ranks_paraphrases_first(
    models: Path, vectors: Any, monkeypatch: Any
) -> None:
    """Through the engine, loading the graph `vectors` cached: one file, really int8."""
    monkeypatch.setenv("COZY_MODELS_DIR", str(models))
    emb = LocalEmbedder({"precision": "int8", "threads": 1})
    a, b, c = await emb.embed(
        [
            "How do I reset my password?",
            "I forgot my login credentials, how can I change them?",
            "The recipe needs two cups of flour and an egg.",
        ]
    )
    dot = lambda x, y: sum(p * q for p, q in zip(x, y, strict=True))  # noqa: E731
    assert dot(a, b) > dot(a, c) + 0.2
    import onnx

    (cached,) = models.glob("all-MiniLM-L6-v2-int8-*.onnx")  # noqa: ASYNC240
    ops = {n.op_type for n in onnx.load(cached).graph.node}
    assert {"QAttention", "MatMulInteger"} <= ops and "Attention" not in ops


def test_int8_graph_is_cached_by_the_fp32_graphs_hash(tmp_path: Path, monkeypatch: Any) -> None:
    import hashlib

    built: list[bytes] = []

    def fake_quantize(graph: bytes, out: Path) -> None:
        built.append(graph)
        out.write_bytes(b"int8 of " + graph)

    monkeypatch.setenv("COZY_MODELS_DIR", str(tmp_path / "models"))
    monkeypatch.setattr(minilm_onnx, "quantize", fake_quantize)
    assert minilm_onnx.int8_graph(b"graph one") == b"int8 of graph one"
    key = hashlib.sha256(b"graph one").hexdigest()[:16]
    assert (tmp_path / "models" / f"all-MiniLM-L6-v2-int8-{key}.onnx").is_file()
    assert minilm_onnx.int8_graph(b"graph one") == b"int8 of graph one"
    assert built == [b"graph one"]  # the second call read the cache
    assert minilm_onnx.int8_graph(b"graph two") == b"int8 of graph two"  # new source
    assert built == [b"graph one", b"graph two"]
    assert len(list((tmp_path / "models").iterdir())) == 2  # no .part files left
    # a models dir that cannot be created (a file is in the way): built, not cached
    (tmp_path / "blocked").write_text("")
    monkeypatch.setenv("COZY_MODELS_DIR", str(tmp_path / "blocked" / "models"))
    assert minilm_onnx.int8_graph(b"graph one") == b"int8 of graph one"
    assert len(built) == 3


def test_precision_options_are_checked() -> None:
    with pytest.raises(ConfigError, match="precision"):
        LocalEmbedder({"precision": "int4"})


@needs_model
async def test_int8_on_the_numpy_backend_is_a_config_error() -> None:
    emb = LocalEmbedder({"precision": "int8", "backend": "numpy"})
    with pytest.raises(ConfigError, match="int8 runs on onnxruntime"):
        await emb.initialize()
