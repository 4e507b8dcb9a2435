"""A BERT encoder for all-MiniLM-L6-v2 without torch: numpy, or onnxruntime (minilm_onnx.py).

Architecture (hard-coded; the weights are hash-pinned so they cannot disagree):
6 layers, hidden 384, 12 heads of 32, FFN 1536 with exact (erf) GELU, post-norm
LayerNorm (eps 1e-12), absolute positions, token type 0. The sentence embedding is
the mean of the last hidden states over the attention mask, L2-normalised, as in
sentence-transformers.

numpy, safetensors and tokenizers are imported inside functions so importing this
module stays cheap.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cozy.engines.embed.bert import (
    DEFAULT_MAX_TOKENS,
    HEAD_DIM,
    HEADS,
    HIDDEN,
    LAYERS,
    LN_EPS,
    MASKED,
    MAX_POSITIONS,
    Array,
    Layer,
)


def _layer_norm(x: Array, gamma: Array, beta: Array) -> Array:
    import numpy as np

    mean = x.mean(axis=-1, keepdims=True)
    centred = x - mean
    var = np.mean(centred * centred, axis=-1, keepdims=True)
    return centred / np.sqrt(var + LN_EPS) * gamma + beta  # type: ignore[no-any-return]


def _gelu(x: Array) -> Array:
    """Exact GELU, x * Phi(x), with erf from Abramowitz & Stegun 7.1.26.

    That erf is within 1.5e-7 of the true one, below float32 noise here. With
    a = |x| / sqrt(2) it gives e = 1 - erf(a) = poly(t) * exp(-a^2), t = 1 / (1 + p a),
    so GELU is x - x e / 2 for x >= 0 and x e / 2 for x < 0. Works in place on
    temporaries to keep allocations down (this is the costliest elementwise step).
    """
    import numpy as np

    a = np.abs(x)
    a *= 0.7071067811865476
    t = a * 0.3275911
    t += 1.0
    np.reciprocal(t, out=t)
    poly = t * 1.061405429
    for coeff in (-1.453152027, 1.421413741, -0.284496736, 0.254829592):
        poly += coeff
        poly *= t
    np.square(a, out=a)
    np.negative(a, out=a)
    np.exp(a, out=a)
    poly *= a  # e = 1 - erf(|x| / sqrt 2)
    poly *= x
    poly *= 0.5  # x e / 2
    return np.where(x >= 0, x - poly, poly)


class MiniLM:
    """Weights plus tokenizer; `encode()` is thread-safe (it holds no mutable state)."""

    def __init__(
        self,
        weights: Path,
        tokenizer: Path,
        *,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        backend: str = "auto",
        threads: int = 0,
        int8: bool = False,
    ) -> None:
        import numpy as np
        from safetensors.numpy import load_file
        from tokenizers import Tokenizer

        if not 2 <= max_tokens <= MAX_POSITIONS:
            raise ValueError(f"max_tokens must be between 2 and {MAX_POSITIONS}")
        self.max_tokens = max_tokens
        raw = load_file(str(weights))
        tensors = {k.removeprefix("bert."): v for k, v in raw.items()}

        def get(name: str) -> Array:
            return np.ascontiguousarray(tensors[name], dtype=np.float32)

        def linear_t(name: str) -> Array:
            return np.ascontiguousarray(get(name).T)

        self.word = get("embeddings.word_embeddings.weight")
        self.position = get("embeddings.position_embeddings.weight")
        self.token_type0 = get("embeddings.token_type_embeddings.weight")[0]
        self.emb_ln_g = get("embeddings.LayerNorm.weight")
        self.emb_ln_b = get("embeddings.LayerNorm.bias")
        self.layers: list[Layer] = []
        for i in range(LAYERS):
            p = f"encoder.layer.{i}."
            att = p + "attention."
            qkv_w = np.concatenate(
                [linear_t(f"{att}self.{n}.weight") for n in ("query", "key", "value")], axis=1
            )
            qkv_b = np.concatenate([get(f"{att}self.{n}.bias") for n in ("query", "key", "value")])
            self.layers.append(
                Layer(
                    qkv_w=np.ascontiguousarray(qkv_w),
                    qkv_b=qkv_b,
                    out_w=linear_t(att + "output.dense.weight"),
                    out_b=get(att + "output.dense.bias"),
                    ln1_g=get(att + "output.LayerNorm.weight"),
                    ln1_b=get(att + "output.LayerNorm.bias"),
                    ffn_in_w=linear_t(p + "intermediate.dense.weight"),
                    ffn_in_b=get(p + "intermediate.dense.bias"),
                    ffn_out_w=linear_t(p + "output.dense.weight"),
                    ffn_out_b=get(p + "output.dense.bias"),
                    ln2_g=get(p + "output.LayerNorm.weight"),
                    ln2_b=get(p + "output.LayerNorm.bias"),
                )
            )
        self.tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.no_padding()
        self.tokenizer.enable_truncation(max_length=max_tokens)
        # `onnx`: the same graph on onnxruntime (minilm_onnx.py), `numpy`: `hidden_states`
        from cozy.engines.embed import minilm_onnx

        if backend not in ("auto", "onnx", "numpy"):
            raise ValueError(f"unknown backend {backend!r}: use auto, onnx or numpy")
        if (backend == "onnx" or int8) and not minilm_onnx.available():
            raise ValueError(f"{'int8' if int8 else 'backend onnx'} needs onnx and onnxruntime")
        if int8 and backend == "numpy":
            raise ValueError("int8 runs on onnxruntime, not the numpy backend")
        self.onnx: minilm_onnx.OnnxForward | None = None
        if backend == "onnx" or (backend == "auto" and minilm_onnx.available()):
            self.onnx = minilm_onnx.OnnxForward(self, threads, int8=int8)
            self.layers = []  # the session holds its own copy of the weights
        self.backend = "onnx" if self.onnx is not None else "numpy"

    def tokenize(self, texts: Sequence[str]) -> list[list[int]]:
        return [enc.ids for enc in self.tokenizer.encode_batch(list(texts))]

    def forward(self, ids: Any, mask: Any) -> Array:
        """Pooled, L2-normalised embeddings for a padded batch: ids/mask are (B, L)."""
        import numpy as np

        run = self.onnx if self.onnx is not None else self.hidden_states
        states = run(ids, mask)
        weights = mask[:, :, None].astype(np.float32)
        pooled = (states * weights).sum(axis=1) / np.maximum(weights.sum(axis=1), 1e-9)
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        return (pooled / np.maximum(norms, 1e-12)).astype(np.float32)  # type: ignore[no-any-return]

    def hidden_states(self, ids: Any, mask: Any) -> Array:
        """The last hidden states (B, L, 384) of a padded batch, in numpy."""
        import numpy as np

        batch, length = ids.shape
        x = self.word[ids] + self.position[:length][None, :, :] + self.token_type0
        x = _layer_norm(x.reshape(batch * length, HIDDEN), self.emb_ln_g, self.emb_ln_b)
        bias = np.where(mask[:, None, None, :] > 0, 0.0, MASKED).astype(np.float32)
        scale = np.float32(1.0 / np.sqrt(HEAD_DIM))
        for layer in self.layers:
            qkv = x @ layer.qkv_w + layer.qkv_b
            qkv = qkv.reshape(batch, length, 3, HEADS, HEAD_DIM).transpose(2, 0, 3, 1, 4)
            q, k, v = qkv[0], qkv[1], qkv[2]  # (B, H, L, D)
            scores = (q * scale) @ k.transpose(0, 1, 3, 2) + bias
            scores -= scores.max(axis=-1, keepdims=True)
            probs = np.exp(scores)
            probs /= probs.sum(axis=-1, keepdims=True)
            ctx = (probs @ v).transpose(0, 2, 1, 3).reshape(batch * length, HIDDEN)
            x = _layer_norm(ctx @ layer.out_w + layer.out_b + x, layer.ln1_g, layer.ln1_b)
            hidden = _gelu(x @ layer.ffn_in_w + layer.ffn_in_b)
            x = _layer_norm(
                hidden @ layer.ffn_out_w + layer.ffn_out_b + x, layer.ln2_g, layer.ln2_b
            )
        return x.reshape(batch, length, HIDDEN)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> Array:
        """Embed texts: sorted by token length, padded per batch, returned in input order."""
        import numpy as np

        if not texts:
            return np.zeros((0, HIDDEN), dtype=np.float32)
        return self.encode_ids(self.tokenize(texts), batch_size=batch_size)

    def encode_ids(self, token_ids: Sequence[Sequence[int]], *, batch_size: int = 32) -> Array:
        """Embed token id sequences (this model's vocabulary), in input order."""
        import numpy as np

        out = np.zeros((len(token_ids), HIDDEN), dtype=np.float32)
        order = sorted(range(len(token_ids)), key=lambda i: len(token_ids[i]))
        for start in range(0, len(order), max(1, batch_size)):
            chunk = order[start : start + max(1, batch_size)]
            length = max(len(token_ids[i]) for i in chunk)
            ids = np.zeros((len(chunk), length), dtype=np.int64)
            mask = np.zeros((len(chunk), length), dtype=np.int64)
            for row, i in enumerate(chunk):
                seq = token_ids[i]
                ids[row, : len(seq)] = seq
                mask[row, : len(seq)] = 1
            out[chunk] = self.forward(ids, mask)
        return out
