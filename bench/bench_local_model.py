"""The embedded model (ai.local) against the raw llama-cpp-python binding, in one run.

Prints tables; asserts nothing. Run: .venv/bin/python bench/bench_local_model.py
[--rounds 15] [--tokens 128] [--threads N] [--build-log PATH] [--cli-runs 3]

- tokens/s (decode: tokens after the first / time after the first) and time to first
  token of `LocalProvider.chat_stream` next to `Llama.create_chat_completion(stream=True)`
  on the same loaded model, prompt, threads and sampling (greedy, repeat penalty 1.1),
  alternating which goes first; the KV cache is cleared before each run, so both evaluate
  the whole prompt. Goals: >= 0.9x the binding's tokens/s, TTFT overhead <= 20 ms.
- the memory the loaded model takes (RSS after loading and one answer, minus before).
- the install time the llama.cpp build adds, from install.sh's log (`--build-log`,
  default .venv/llama-build.log: "built in N s"), or a `time` output (`real XmYs`).
- `cozy run "What is 2+2?"` wall time end to end on the embedded model (a new data dir
  each run, no Ollama, no OpenAI variables: the path a new user waits for).
The machine's load average is printed with the figures (it may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from cozy.core.types import GenerationOptions, Message
from cozy.engines.ai.local_provider import LocalProvider

PROMPT = "Write a long story about a dragon who learns to bake bread."
ROOT = Path(__file__).resolve().parents[1]


def rss() -> int:
    with open("/proc/self/status", encoding="ascii") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


@dataclass(slots=True)
class Run:
    """One answer: wall and process CPU seconds to the first text and after it. CPU time
    is what the process itself spent, so it holds still on a loaded machine where wall
    time does not (llama.cpp runs `n_threads` threads; the event loop sleeps)."""

    ttft: float
    after: float
    text: str
    ttft_cpu: float
    after_cpu: float


class Clock:
    def __init__(self) -> None:
        self.wall0, self.cpu0 = time.perf_counter(), time.process_time()
        self.first: tuple[float, float] | None = None

    def see_first(self) -> None:
        if self.first is None:
            self.first = (time.perf_counter(), time.process_time())

    def done(self, text: list[str]) -> Run:
        wall, cpu = time.perf_counter(), time.process_time()
        fw, fc = self.first or (wall, cpu)
        return Run(fw - self.wall0, wall - fw, "".join(text), fc - self.cpu0, cpu - fc)


async def run_provider(p: LocalProvider, tokens: int) -> Run:
    opts = GenerationOptions(temperature=0.0, max_tokens=tokens)
    clock = Clock()
    text = []
    async for chunk in p.chat_stream([Message("user", PROMPT)], model="", options=opts):
        if chunk.delta:
            clock.see_first()
        text.append(chunk.delta)
    return clock.done(text)


def run_raw(llm: object, tokens: int, repeat_penalty: float) -> Run:
    """The binding's own chat stream (its chat handler from the same GGUF template)."""
    clock = Clock()
    text = []
    stream = llm.create_chat_completion(  # type: ignore[attr-defined]
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        temperature=0.0,
        max_tokens=tokens,
        repeat_penalty=repeat_penalty,
    )
    for chunk in stream:
        delta = chunk["choices"][0]["delta"].get("content")
        if delta:
            text.append(delta)
            clock.see_first()
    return clock.done(text)


async def steps(p: LocalProvider, loaded: object) -> str:
    """What cozy adds before llama.cpp starts on the prompt, each timed alone: building
    the plan, the chat template, tokenizing, and the hop to the worker thread and back
    (a no-op job). Under load the TTFT medians above move by more than these add up to."""
    from cozy.engines.ai.llama_generate import render

    llm = loaded.llm  # type: ignore[attr-defined]
    msgs = [Message("user", PROMPT)]
    opts = GenerationOptions(temperature=0.0, max_tokens=96)
    out: dict[str, list[float]] = {"plan": [], "template": [], "tokenize": [], "thread hop": []}
    for _ in range(50):
        t0 = time.perf_counter()
        plan = p.plan(msgs, "", None, opts)
        t1 = time.perf_counter()
        prompt = render(loaded, plan.messages)  # type: ignore[arg-type]
        t2 = time.perf_counter()
        llm.tokenize(prompt.encode(), add_bos=False, special=True)
        t3 = time.perf_counter()
        job = p.worker.submit(lambda _job: None)
        async for _ in job.items(30, 30):
            pass
        t4 = time.perf_counter()
        for key, dt in zip(out, (t1 - t0, t2 - t1, t3 - t2, t4 - t3), strict=True):
            out[key].append(dt * 1000)
    parts = [f"{k} {statistics.median(v):.2f} ms" for k, v in out.items()]
    total = sum(statistics.median(v) for v in out.values())
    return ", ".join(parts) + f" (total {total:.2f} ms)"


def spread(xs: list[float], digits: int = 1) -> str:
    """median [25th-75th percentile] of `xs`."""
    q = statistics.quantiles(xs, n=4) if len(xs) > 1 else [xs[0]] * 3
    return f"{q[1]:.{digits}f} [{q[0]:.{digits}f} - {q[2]:.{digits}f}]"


def build_seconds(path: Path) -> str:
    if not path.is_file():
        return f"(no build log at {path})"
    text = path.read_text(errors="replace")
    if m := re.search(r"built in (\d+)s", text):
        return f"{m.group(1)} s (install.sh's log {path})"
    if m := re.search(r"real\s+(\d+)m([\d.]+)s", text):
        return f"{int(m.group(1)) * 60 + float(m.group(2)):.0f} s (`time` in {path})"
    return f"(no timing in {path})"


def cli_runs(n: int) -> list[float]:
    cozy = ROOT / ".venv" / "bin" / "cozy"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "COZY_"))}
    env["OLLAMA_HOST"] = "http://127.0.0.1:9"  # no Ollama: auto picks the embedded model
    env["COZY_BACKGROUND_JOBS"] = "0"  # the answer's wall time, not the memory jobs after
    out = []
    for _ in range(n):
        with tempfile.TemporaryDirectory() as home:
            started = time.perf_counter()
            r = subprocess.run(
                [str(cozy), "run", "What is 2+2?"],
                env={**env, "COZY_HOME": home},
                capture_output=True,
                text=True,
                timeout=600,
            )
            out.append(time.perf_counter() - started)
            print(f"  cozy run -> {r.stdout.strip()[:60]!r} (exit {r.returncode})")
    return out


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=15)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=0, help="0: the provider's default")
    ap.add_argument("--build-log", type=Path, default=ROOT / ".venv" / "llama-build.log")
    ap.add_argument("--cli-runs", type=int, default=3)
    args = ap.parse_args()

    before = rss()
    p = LocalProvider({"n_threads": args.threads} if args.threads else {})
    t = time.perf_counter()
    loaded = await p.loaded("")
    load_s = time.perf_counter() - t
    await run_provider(p, 8)  # warm: the KV cache and compute buffers are allocated
    model_mem = rss() - before
    llm = loaded.llm
    print(f"model: {loaded.file.path.name}, {loaded.n_threads} threads, n_ctx {loaded.n_ctx}")
    print(f"load average at start: {os.getloadavg()[0]:.1f}")

    made = (
        await p.chat(
            [Message("user", PROMPT)],
            model="",
            options=GenerationOptions(temperature=0.0, max_tokens=args.tokens),
        )
    ).usage
    n = made.completion_tokens if made else args.tokens  # greedy: both make these tokens
    rows: dict[str, list[Run]] = {"cozy": [], "raw": []}
    for i in range(args.rounds):
        order = ["cozy", "raw"] if i % 2 == 0 else ["raw", "cozy"]
        for who in order:
            llm.reset()  # both evaluate the whole prompt
            if who == "cozy":
                rows[who].append(await run_provider(p, args.tokens))
            else:
                rows[who].append(
                    await asyncio.to_thread(run_raw, llm, args.tokens, p.repeat_penalty)
                )
    print(f"load average after: {os.getloadavg()[0]:.1f}\n")
    pairs = list(zip(rows["cozy"], rows["raw"], strict=True))
    print(f"{n} tokens each; median [25th - 75th percentile] of {args.rounds} rounds")
    print(f"{'':6}{'TTFT ms':>24}{'TTFT CPU ms':>24}{'tokens/s':>24}{'tokens/CPU s':>24}")
    for who, r in rows.items():
        cols = [
            spread([x.ttft * 1000 for x in r]),
            spread([x.ttft_cpu * 1000 for x in r]),
            spread([(n - 1) / x.after for x in r]),
            spread([(n - 1) / x.after_cpu for x in r]),
        ]
        print(f"{who:6}" + "".join(f"{c:>24}" for c in cols))
    if rows["cozy"][0].text != rows["raw"][0].text:
        print("note: the two texts differ (a different prompt or sampling?)")
    print("\ncozy against raw, per round (the two ran back to back, in alternating order):")
    print(
        f"  tokens/s ratio      {spread([r.after / c.after for c, r in pairs], 3)}"
        f"   (CPU: {spread([r.after_cpu / c.after_cpu for c, r in pairs], 3)}; goal >= 0.9x)"
    )
    print(
        f"  TTFT overhead ms    {spread([(c.ttft - r.ttft) * 1000 for c, r in pairs])}"
        f"   (CPU: {spread([(c.ttft_cpu - r.ttft_cpu) * 1000 for c, r in pairs])}; "
        "goal <= 20 ms)"
    )
    print(f"cozy's own steps before the first token (median of 50): {await steps(p, loaded)}")
    print(f"loaded model memory (RSS after load + one answer): {model_mem / 1e6:.0f} MB")
    print(f"load time: {load_s:.2f} s (hash check + header + llama.cpp load)")
    print(f"install time added by the llama.cpp build: {build_seconds(args.build_log)}")
    if args.cli_runs:
        times = cli_runs(args.cli_runs)
        print(
            f'cozy run "What is 2+2?" end to end (new data dir each): median '
            f"{statistics.median(times):.2f} s, runs {', '.join(f'{x:.2f}' for x in times)}"
        )


if __name__ == "__main__":
    asyncio.run(main())
    sys.exit(0)
