"""Throughput and latency of the local all-MiniLM-L6-v2 embedder (onnxruntime or numpy).

    .venv/bin/python bench/bench_embed.py [--seconds 2] [--model-dir DIR] [--ceiling N]
        [--ab N]

Prints sentences/s for batch sizes 1, 8, 32 and 64 (the engine's `batch_size`; the
same 256 sentences each time, sorted by length and padded per batch, so the ratios
compare like with like) and single-sentence latency p50/p99 through
the async `embed()` API (thread hop included). `--ceiling N`: N rounds of 32 chunks
of ~224 tokens, each followed by the numpy fp32 matmul probe (the median of 7
products, bench_knowledge.py), so each ratio embedder / ceiling sees one machine load.
`--ab N`: N rounds of the plain-op ONNX graph and the fused contrib-op graph
(minilm_onnx.py) in turn on the same chunks, each beside its own probe: chunks/s, CPU
seconds, the ratio to the ceiling, and the ratio per CPU-second (work per CPU-second
against a one-thread probe's; moves less with load than the wall-clock ratio), one
run. Informative only; CI never asserts on wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

WORDS = [
    "the",
    "quick",
    "brown",
    "fox",
    "jumps",
    "over",
    "lazy",
    "dog",
    "memory",
    "profile",
    "knowledge",
    "search",
    "local",
    "assistant",
    "runtime",
    "sentence",
    "embedding",
    "vector",
    "model",
    "token",
    "batch",
    "latency",
    "python",
    "numpy",
    "orchestrator",
    "session",
    "personality",
    "voice",
    "server",
    "terminal",
    "cozy",
    "engine",
]


def make_sentences(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    return [" ".join(rng.choices(WORDS, k=rng.randint(6, 24))) + "." for _ in range(n)]


def throughput(embedder: object, sentences: list[str], batch: int, seconds: float) -> float:
    """Sentences/s of `embed_sync(sentences)` with the engine's batch size set to `batch`."""
    from cozy.engines.embed.local import LocalEmbedder

    assert isinstance(embedder, LocalEmbedder)
    embedder.batch_size = batch
    done, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        embedder.embed_sync(sentences)
        done += len(sentences)
    return done / (time.perf_counter() - start)


async def latencies(embedder: object, sentences: list[str], rounds: int) -> list[float]:
    from cozy.engines.embed.local import LocalEmbedder

    assert isinstance(embedder, LocalEmbedder)
    out: list[float] = []
    for i in range(rounds):
        t0 = time.perf_counter()
        await embedder.embed([sentences[i % len(sentences)]])
        out.append((time.perf_counter() - t0) * 1000)
    return out


def ceiling_pairs(embedder: object, rounds: int, tokens: int = 224) -> list[tuple[float, float]]:
    """(embedder chunks/s, ceiling chunks/s) measured back to back `rounds` times: 32
    chunks of `tokens` tokens through `embed_sync`, then the numpy fp32 matmul probe of
    bench_knowledge.py over the model's FLOPs per chunk, so each pair sees one load."""
    import sys
    from pathlib import Path

    from cozy.engines.embed.local import LocalEmbedder

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_knowledge import matmul_gflops, minilm_flops

    assert isinstance(embedder, LocalEmbedder)
    rng = random.Random(3)
    # ~1.1 tokens per word of this vocabulary: a chunk of about `tokens` tokens
    chunks = [" ".join(rng.choices(WORDS, k=int(tokens / 1.1))) for _ in range(32)]
    embedder.batch_size = 32
    embedder.embed_sync(chunks[:4])  # warm
    model = embedder._model
    assert model is not None
    mean = statistics.mean(len(x) for x in model.tokenize(chunks))
    per_chunk = minilm_flops(round(mean))
    out = []
    for _ in range(rounds):
        t = time.perf_counter()
        embedder.embed_sync(chunks)
        rate = len(chunks) / (time.perf_counter() - t)
        out.append((rate, matmul_gflops(repeats=3) * 1e9 / per_chunk))
    return out


def graph_ab(model_dir: str | None, rounds: int, tokens: int = 224) -> list[list[float]]:
    """Rows of (graph 0 plain / 1 fused, chunks/s, CPU s, ceiling chunks/s, ratio per
    CPU-second): the two ONNX graphs in turn, 32 chunks of ~`tokens` tokens each time,
    then the probes (wall-clock median, and per CPU-second, which load barely moves)."""
    import sys
    from pathlib import Path

    from cozy.engines.embed import minilm_onnx, model_files
    from cozy.engines.embed.minilm import MiniLM

    sys.path.insert(0, str(Path(__file__).parent))
    from bench_knowledge import matmul_gflops, matmul_per_cpu_second, minilm_flops

    files = model_files.locate(Path(model_dir) if model_dir else None, verify=False)
    # the numpy backend keeps the layer weights: both graphs are built from one load
    model = MiniLM(files.directory / "model.safetensors", files.directory / "tokenizer.json",
                   backend="numpy")  # fmt: skip
    graphs = [minilm_onnx.OnnxForward(model, fused=f) for f in (False, True)]
    rng = random.Random(3)
    chunks = [" ".join(rng.choices(WORDS, k=int(tokens / 1.1))) for _ in range(32)]
    per_chunk = minilm_flops(round(statistics.mean(len(x) for x in model.tokenize(chunks))))
    rows: list[list[float]] = []
    for r in range(rounds + 1):  # round 0 warms both sessions up and is not counted
        for g, graph in enumerate(graphs):
            model.onnx = graph
            t, cpu = time.perf_counter(), time.process_time()
            model.encode(chunks, batch_size=32)
            wall, cpu = time.perf_counter() - t, time.process_time() - cpu
            if r:
                ceiling = matmul_gflops() * 1e9 / per_chunk
                per_cpu = len(chunks) * per_chunk / 1e9 / cpu / matmul_per_cpu_second()
                rows.append([g, len(chunks) / wall, cpu, ceiling, per_cpu])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description="bench the local embedder")
    parser.add_argument("--seconds", type=float, default=2.0, help="time per batch size")
    parser.add_argument("--rounds", type=int, default=200, help="single-sentence calls")
    parser.add_argument("--model-dir", default=None)
    parser.add_argument(
        "--ceiling",
        type=int,
        default=0,
        help="N rounds of embedder vs matmul ceiling, side by side",
    )
    parser.add_argument(
        "--ab", type=int, default=0, help="N rounds of the plain vs fused ONNX graph, in turn"
    )
    args = parser.parse_args()
    if args.ab:
        rows = graph_ab(args.model_dir, args.ab)
        print(f"plain vs fused ONNX graph, in turn, 32 chunks of ~224 tokens, batch 32, "
              f"{os.cpu_count()} threads, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'graph':>6} | {'chunks/s':>8} | {'CPU s':>6} | {'ceiling':>7} | {'ratio':>5} | "
              f"{'per CPU-s':>9}")  # fmt: skip
        for g, rate, cpu, ceiling, per_cpu in rows:
            name = ("plain", "fused")[int(g)]
            print(f"{name:>6} | {rate:>8.1f} | {cpu:>6.2f} | {ceiling:>7.1f} | "
                  f"{rate / ceiling:>5.2f} | {per_cpu:>9.2f}")  # fmt: skip
        for g, name in enumerate(("plain", "fused")):
            mine = [r for r in rows if r[0] == g]
            ratios = sorted(rate / ceiling for _, rate, _, ceiling, _ in mine)
            print(f"{name}: median {statistics.median(r[1] for r in mine):.1f} chunks/s, "
                  f"{statistics.median(r[2] for r in mine):.2f} CPU s per 32 chunks, "
                  f"median ratio {statistics.median(ratios):.2f} "
                  f"({ratios[0]:.2f}-{ratios[-1]:.2f}), per CPU-second "
                  f"{statistics.median(r[4] for r in mine):.2f}; "
                  f"load {os.getloadavg()[0]:.1f}")  # fmt: skip
        return

    from cozy.engines.embed.local import LocalEmbedder

    options = {"model_dir": args.model_dir} if args.model_dir else {}
    embedder = LocalEmbedder(options)
    t0 = time.perf_counter()
    asyncio.run(embedder.initialize())
    load_ms = (time.perf_counter() - t0) * 1000
    sentences = make_sentences(256)
    embedder.embed_sync(sentences[:8])  # warm-up

    rows = [(b, throughput(embedder, sentences, b, args.seconds)) for b in (1, 8, 32, 64)]
    lat = sorted(asyncio.run(latencies(embedder, sentences, args.rounds)))
    p50 = statistics.median(lat)
    p99 = lat[min(len(lat) - 1, round(0.99 * (len(lat) - 1)))]

    files = embedder.files
    backend = embedder._model.backend if embedder._model is not None else "?"
    print(f"all-MiniLM-L6-v2 ({backend}) from {files.directory if files else '?'}")
    print(f"load + verify: {load_ms:.0f} ms, sentences of 6-24 words, {os.cpu_count()} CPUs")
    print()
    print(f"{'batch':>6} | {'sentences/s':>12} | {'vs batch 1':>10}")
    print(f"{'-' * 6}-+-{'-' * 12}-+-{'-' * 10}")
    base = rows[0][1]
    for batch, rate in rows:
        print(f"{batch:>6} | {rate:>12.1f} | {rate / base:>9.2f}x")
    print()
    print(f"single sentence via embed(): p50 {p50:.2f} ms, p99 {p99:.2f} ms ({len(lat)} calls)")
    if args.ceiling:
        pairs = ceiling_pairs(embedder, args.ceiling)
        print(
            f"\nembedder ({embedder._model.backend if embedder._model else '?'}) beside the "
            f"fp32 ceiling, back to back, 32 chunks of ~224 tokens, load {os.getloadavg()[0]:.1f}"
        )
        print(f"{'round':>5} | {'chunks/s':>8} | {'ceiling':>8} | {'ratio':>5}")
        for i, (rate, ceiling) in enumerate(pairs, 1):
            print(f"{i:>5} | {rate:>8.1f} | {ceiling:>8.1f} | {rate / ceiling:>5.2f}")
        ratios = sorted(r / c for r, c in pairs)
        print(f"median ratio {statistics.median(ratios):.2f} (min {ratios[0]:.2f}, "
              f"max {ratios[-1]:.2f})")  # fmt: skip


if __name__ == "__main__":
    main()
