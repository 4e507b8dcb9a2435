"""all-MiniLM-L6-v2 on onnxruntime: the same BERT as minilm.py, as an ONNX graph built
here from the safetensors weights (no torch, no download, no file on disk).

Why: the numpy forward pass reached about a quarter of this machine's fp32 matmul
ceiling (its GELU, softmax and layer norms are many memory-bound numpy passes over
(batch x tokens x 1536) arrays); onnxruntime runs the model with threaded kernels.

Two graphs of the same model. The fused one (the default) uses onnxruntime's contrib
kernels (domain com.microsoft): `Attention` (q/k/v projection, scaled scores, masked
softmax and context in one op), `SkipLayerNormalization` (bias + residual + norm) and
`BiasGelu` (bias + exact erf GELU). onnxruntime's graph optimiser does not find these
patterns in the plain graph (profiled: its erf GELU stays five elementwise passes and
every bias is a separate Add), and on a batch of 32 chunks of ~240 tokens the fused
graph used ~20% less CPU at the same output (hidden states within ~5e-6). The plain
graph, standard ops only, stays as the baseline: the A/B bench and the equality test.

Both take token ids (B, L) and positions (L,) and return the last hidden states
(B, L, 384); the fused graph takes the 0/1 mask (B, L) as int32, the plain one the
additive mask (B, 1, 1, L). Pooling and L2 normalisation stay in numpy (minilm.py),
so every backend shares them. `onnx` (graph building) and `onnxruntime` are imported
lazily: without them the numpy forward pass is used.

int8 (`precision: int8`): the fused graph through onnxruntime's dynamic quantisation
(per-channel int8 weights of every projection, `MatMulInteger` / `QAttention`; the
activations are quantised per batch at run time). Quantising takes seconds, so the
result is cached in the models directory, named by the SHA-256 of the fp32 graph it
came from: new weights or a changed graph builder make a new file, never a stale one.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from cozy.engines.embed.bert import (
    HEAD_DIM,
    HEADS,
    HIDDEN,
    LN_EPS,
    MASKED,
    Array,
    BertWeights,
    Layer,
)
from cozy.engines.files import models_dir

OPSET = 17  # LayerNormalization is an operator from opset 17
CONTRIB = "com.microsoft"  # onnxruntime's own operators (Attention, SkipLayerNormalization)


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def build_graph(model: BertWeights, *, fused: bool = True) -> bytes:
    """The serialized ONNX model of `model`'s weights (see the module docstring)."""
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    inits: list[Any] = []
    nodes: list[Any] = []

    def const(name: str, arr: Any) -> str:
        value = np.asarray(arr)
        if value.dtype == np.float64:
            value = value.astype(np.float32)
        inits.append(numpy_helper.from_array(np.ascontiguousarray(value), name))
        return name

    def op(kind: str, *inputs: str, **attrs: Any) -> str:
        out = f"t{len(nodes)}"
        node = helper.make_node(kind, list(inputs), [out], name=f"n{len(nodes)}", **attrs)
        nodes.append(node)
        return out

    def contrib(kind: str, *inputs: str, **attrs: Any) -> str:
        out = op(kind, *inputs, **attrs)
        nodes[-1].domain = CONTRIB
        return out

    def linear(x: str, w: Any, b: Any, name: str) -> str:
        return op("Add", op("MatMul", x, const(name + ".w", w)), const(name + ".b", b))

    def heads(x: str, perm: list[int]) -> str:  # (B, L, 384) -> (B, 12, L, 32) or its transpose
        return op("Transpose", op("Reshape", x, "shape.heads"), perm=perm)

    def norm(x: str, gamma: Any, beta: Any, name: str) -> str:
        g, b = const(name + ".g", gamma), const(name + ".b", beta)
        return op("LayerNormalization", x, g, b, epsilon=LN_EPS, axis=-1)

    def fused_layer(x: str, layer: Layer, name: str) -> str:
        # Attention scales the scores by 1/sqrt(head size) itself
        qkv_w, qkv_b = const(name + ".qkv.w", layer.qkv_w), const(name + ".qkv.b", layer.qkv_b)
        ctx = contrib("Attention", x, qkv_w, qkv_b, "mask", num_heads=HEADS)
        attended = op("MatMul", ctx, const(name + ".o.w", layer.out_w))
        ln1 = [const(name + ".ln1.g", layer.ln1_g), const(name + ".ln1.b", layer.ln1_b)]
        out_b = const(name + ".o.b", layer.out_b)
        x = contrib("SkipLayerNormalization", attended, x, *ln1, out_b, epsilon=LN_EPS)
        h = op("MatMul", x, const(name + ".ffn_in.w", layer.ffn_in_w))
        h = contrib("BiasGelu", h, const(name + ".ffn_in.b", layer.ffn_in_b))  # exact erf GELU
        out = op("MatMul", h, const(name + ".ffn_out.w", layer.ffn_out_w))
        ln2 = [const(name + ".ln2.g", layer.ln2_g), const(name + ".ln2.b", layer.ln2_b)]
        out_b = const(name + ".ffn_out.b", layer.ffn_out_b)
        return contrib("SkipLayerNormalization", out, x, *ln2, out_b, epsilon=LN_EPS)

    def plain_layer(x: str, layer: Layer, name: str) -> str:
        scale = 1.0 / np.sqrt(HEAD_DIM)  # folded into the query weights
        q_w, k_w, v_w = np.split(layer.qkv_w, 3, axis=1)
        q_b, k_b, v_b = np.split(layer.qkv_b, 3)
        q = heads(linear(x, q_w * scale, q_b * scale, name + ".q"), [0, 2, 1, 3])
        k = heads(linear(x, k_w, k_b, name + ".k"), [0, 2, 3, 1])
        v = heads(linear(x, v_w, v_b, name + ".v"), [0, 2, 1, 3])
        probs = op("Softmax", op("Add", op("MatMul", q, k), "mask"), axis=-1)
        ctx = op("Transpose", op("MatMul", probs, v), perm=[0, 2, 1, 3])
        ctx = op("Reshape", ctx, "shape.hidden")
        attended = linear(ctx, layer.out_w, layer.out_b, name + ".o")
        x = norm(op("Add", attended, x), layer.ln1_g, layer.ln1_b, name + ".ln1")
        h = linear(x, layer.ffn_in_w, layer.ffn_in_b, name + ".ffn_in")
        # exact GELU, 0.5 h (1 + erf(h / sqrt 2)); onnxruntime leaves it unfused
        h = op("Mul", op("Mul", h, "half"), op("Add", op("Erf", op("Mul", h, "rsqrt2")), "one"))
        out = linear(h, layer.ffn_out_w, layer.ffn_out_b, name + ".ffn_out")
        return norm(op("Add", out, x), layer.ln2_g, layer.ln2_b, name + ".ln2")

    if not fused:
        const("shape.heads", np.array([0, 0, HEADS, HEAD_DIM], np.int64))
        const("shape.hidden", np.array([0, 0, HIDDEN], np.int64))
        const("half", np.float32(0.5))
        const("one", np.float32(1.0))
        const("rsqrt2", np.float32(1 / np.sqrt(2)))
    x = op("Add", op("Gather", const("word", model.word), "ids"), const("tt0", model.token_type0))
    x = op("Add", x, op("Gather", const("position", model.position), "positions"))
    x = norm(x, model.emb_ln_g, model.emb_ln_b, "emb")
    for i, layer in enumerate(model.layers):
        x = (fused_layer if fused else plain_layer)(x, layer, f"l{i}")
    nodes.append(helper.make_node("Identity", [x], ["hidden"], name="out"))
    if fused:
        mask = helper.make_tensor_value_info("mask", TensorProto.INT32, ["B", "L"])
    else:
        mask = helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", 1, 1, "L"])
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["B", "L"]),
            helper.make_tensor_value_info("positions", TensorProto.INT64, ["L"]),
            mask,
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["B", "L", HIDDEN])],
        inits,
    )
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET), helper.make_opsetid(CONTRIB, 1)]
    )
    onnx_model.ir_version = 8  # readable by onnxruntime >= 1.14
    data: bytes = onnx_model.SerializeToString()
    return data


def quantize(graph: bytes, out: Path) -> None:
    """Write the int8 version of the fused `graph` to `out` (see the module docstring)."""
    import logging

    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    # its warnings go to the root logger ("consider pre-processing", the contrib ops'
    # missing shapes): advice for other models, noise on a user's terminal
    quiet = logging.Filter("nothing")  # passes no record logged on the root logger
    logging.getLogger().addFilter(quiet)
    try:
        quantize_dynamic(
            onnx.load_from_string(graph),
            out,
            op_types_to_quantize=["MatMul", "Attention"],  # not the embedding tables
            per_channel=True,
            # 7-bit weights: without VNNI the u8 x s8 products are summed in pairs into
            # int16, which full-range weights can overflow (onnxruntime's advice)
            reduce_range=True,
            weight_type=QuantType.QInt8,
            # the contrib ops' outputs have no inferred type; they are all float
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    finally:
        logging.getLogger().removeFilter(quiet)


def int8_graph(graph: bytes) -> bytes:
    """The int8 graph of the fused fp32 `graph`, from the cache or quantised now."""
    key = hashlib.sha256(graph).hexdigest()[:16]
    cached = models_dir() / f"all-MiniLM-L6-v2-int8-{key}.onnx"
    if cached.is_file():
        return cached.read_bytes()
    with tempfile.TemporaryDirectory(prefix="cozy-int8-") as tmp:
        built = Path(tmp) / "int8.onnx"
        quantize(graph, built)
        data = built.read_bytes()
    try:  # written beside, then renamed: a reader never sees half a file
        cached.parent.mkdir(parents=True, exist_ok=True)
        part = cached.with_suffix(f".{os.getpid()}.part")
        part.write_bytes(data)
        part.replace(cached)
    except OSError:
        pass  # a read-only cache: quantise again next time
    return data


class OnnxForward:
    """`forward(ids, mask) -> hidden states` on an onnxruntime session.

    `threads`: intra-op threads (0: one per core). Threads sleep rather than spin
    between ops, so a busy machine loses no core to waiting helpers. `fused`: the
    contrib-op graph (see the module docstring) or the plain one.
    """

    def __init__(
        self, model: BertWeights, threads: int = 0, *, fused: bool = True, int8: bool = False
    ) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # no warnings about folded constants
        self.fused = fused or int8
        graph = build_graph(model, fused=self.fused)
        if int8:
            graph = int8_graph(graph)
        self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, ids: Any, mask: Any) -> Array:
        import numpy as np

        length = ids.shape[1]
        if self.fused:
            feed_mask = mask.astype(np.int32)  # Attention's 2-D 0/1 mask
        else:
            feed_mask = np.where(mask[:, None, None, :] > 0, 0.0, MASKED).astype(np.float32)
        feeds = {"ids": ids, "positions": np.arange(length, dtype=np.int64), "mask": feed_mask}
        (hidden,) = self.session.run(None, feeds)
        return hidden  # type: ignore[no-any-return]
