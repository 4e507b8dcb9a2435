"""all-MiniLM-L6-v2 on onnxruntime: the same BERT as minilm.py, as an ONNX graph built
here from the safetensors weights (no torch, no download, no file on disk).

Why: the numpy forward pass reached about a quarter of this machine's fp32 matmul
ceiling (its GELU, softmax and layer norms are many memory-bound numpy passes over
(batch x tokens x 1536) arrays); onnxruntime runs the same graph with fused, threaded
kernels (the erf GELU pattern below becomes one Gelu kernel; LayerNormalization is
one op). Figures in the commit message and bench/bench_knowledge.py.

The graph takes token ids (B, L), positions (L,) and the additive attention mask
(B, 1, 1, L) and returns the last hidden states (B, L, 384); pooling and L2
normalisation stay in numpy (minilm.py), so both backends share them. The query
scale 1/sqrt(32) is folded into the query weights. `onnx` (graph building) and
`onnxruntime` are imported lazily: without them the numpy forward pass is used.
"""

from __future__ import annotations

import os
from typing import Any

from cozy.engines.embed.bert import HEAD_DIM, HEADS, HIDDEN, LN_EPS, MASKED, Array, BertWeights

OPSET = 17  # LayerNormalization is an operator from opset 17


def available() -> bool:
    try:
        import onnx  # noqa: F401
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def build_graph(model: BertWeights) -> bytes:
    """The serialized ONNX model of `model`'s weights."""
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
        nodes.append(helper.make_node(kind, list(inputs), [out], name=f"n{len(nodes)}", **attrs))
        return out

    def linear(x: str, w: Any, b: Any, name: str) -> str:
        return op("Add", op("MatMul", x, const(name + ".w", w)), const(name + ".b", b))

    def heads(x: str, perm: list[int]) -> str:  # (B, L, 384) -> (B, 12, L, 32) or its transpose
        return op("Transpose", op("Reshape", x, "shape.heads"), perm=perm)

    def norm(x: str, gamma: Any, beta: Any, name: str) -> str:
        g, b = const(name + ".g", gamma), const(name + ".b", beta)
        return op("LayerNormalization", x, g, b, epsilon=LN_EPS, axis=-1)

    const("shape.heads", np.array([0, 0, HEADS, HEAD_DIM], np.int64))
    const("shape.hidden", np.array([0, 0, HIDDEN], np.int64))
    half, one = const("half", np.float32(0.5)), const("one", np.float32(1.0))
    rsqrt2 = const("rsqrt2", np.float32(1 / np.sqrt(2)))
    x = op("Add", op("Gather", const("word", model.word), "ids"), const("tt0", model.token_type0))
    x = op("Add", x, op("Gather", const("position", model.position), "positions"))
    x = norm(x, model.emb_ln_g, model.emb_ln_b, "emb")
    scale = 1.0 / np.sqrt(HEAD_DIM)
    for i, layer in enumerate(model.layers):
        q_w, k_w, v_w = np.split(layer.qkv_w, 3, axis=1)
        q_b, k_b, v_b = np.split(layer.qkv_b, 3)
        q = heads(linear(x, q_w * scale, q_b * scale, f"l{i}.q"), [0, 2, 1, 3])
        k = heads(linear(x, k_w, k_b, f"l{i}.k"), [0, 2, 3, 1])
        v = heads(linear(x, v_w, v_b, f"l{i}.v"), [0, 2, 1, 3])
        probs = op("Softmax", op("Add", op("MatMul", q, k), "mask"), axis=-1)
        ctx = op("Transpose", op("MatMul", probs, v), perm=[0, 2, 1, 3])
        ctx = op("Reshape", ctx, "shape.hidden")
        attended = linear(ctx, layer.out_w, layer.out_b, f"l{i}.o")
        x = norm(op("Add", attended, x), layer.ln1_g, layer.ln1_b, f"l{i}.ln1")
        h = linear(x, layer.ffn_in_w, layer.ffn_in_b, f"l{i}.ffn_in")
        # exact GELU, 0.5 h (1 + erf(h / sqrt 2)): onnxruntime fuses it into one kernel
        h = op("Mul", op("Mul", h, half), op("Add", op("Erf", op("Mul", h, rsqrt2)), one))
        out = linear(h, layer.ffn_out_w, layer.ffn_out_b, f"l{i}.ffn_out")
        x = norm(op("Add", out, x), layer.ln2_g, layer.ln2_b, f"l{i}.ln2")
    nodes.append(helper.make_node("Identity", [x], ["hidden"], name="out"))
    graph = helper.make_graph(
        nodes,
        "all-MiniLM-L6-v2",
        [
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["B", "L"]),
            helper.make_tensor_value_info("positions", TensorProto.INT64, ["L"]),
            helper.make_tensor_value_info("mask", TensorProto.FLOAT, ["B", 1, 1, "L"]),
        ],
        [helper.make_tensor_value_info("hidden", TensorProto.FLOAT, ["B", "L", HIDDEN])],
        inits,
    )
    onnx_model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    onnx_model.ir_version = 8  # readable by onnxruntime >= 1.14
    data: bytes = onnx_model.SerializeToString()
    return data


class OnnxForward:
    """`forward(ids, mask) -> hidden states` on an onnxruntime session.

    `threads`: intra-op threads (0: one per core). Threads sleep rather than spin
    between ops, so a busy machine loses no core to waiting helpers.
    """

    def __init__(self, model: BertWeights, threads: int = 0) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or (os.cpu_count() or 1)
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # no warnings about folded constants
        self.session = ort.InferenceSession(
            build_graph(model), options, providers=["CPUExecutionProvider"]
        )

    def __call__(self, ids: Any, mask: Any) -> Array:
        import numpy as np

        length = ids.shape[1]
        additive = np.where(mask[:, None, None, :] > 0, 0.0, MASKED).astype(np.float32)
        feeds = {"ids": ids, "positions": np.arange(length, dtype=np.int64), "mask": additive}
        (hidden,) = self.session.run(None, feeds)
        return hidden  # type: ignore[no-any-return]
