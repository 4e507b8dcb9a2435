"""The shape of all-MiniLM-L6-v2's BERT: its sizes, a layer's weights, and the weights a
forward pass reads. The numpy pass (minilm.py) and the ONNX graph (minilm_onnx.py)
both build on this; neither imports the other's internals."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    import numpy as np
    from numpy.typing import NDArray

    Array = NDArray[np.float32]
else:
    Array = Any

HIDDEN = 384
HEADS = 12
HEAD_DIM = HIDDEN // HEADS
LAYERS = 6
LN_EPS = 1e-12
MAX_POSITIONS = 512
DEFAULT_MAX_TOKENS = 256  # sentence-transformers' max_seq_length for this model
MASKED = -1e9  # the additive attention mask of padding tokens


@dataclass(slots=True)
class Layer:
    qkv_w: Array  # (384, 1152): query | key | value, already transposed for x @ w
    qkv_b: Array
    out_w: Array
    out_b: Array
    ln1_g: Array
    ln1_b: Array
    ffn_in_w: Array  # (384, 1536)
    ffn_in_b: Array
    ffn_out_w: Array  # (1536, 384)
    ffn_out_b: Array
    ln2_g: Array
    ln2_b: Array


class BertWeights(Protocol):
    """What a forward pass reads of the loaded model (`MiniLM` holds them)."""

    word: Array
    position: Array
    token_type0: Array
    emb_ln_g: Array
    emb_ln_b: Array
    layers: list[Layer]
