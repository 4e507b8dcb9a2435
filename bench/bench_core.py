"""Foundation benchmark: CLI start-up, one-shot run wall time, orchestrator overhead.

Prints tables; asserts nothing. Run: .venv/bin/python bench/bench_core.py [--turns 500]

- `cozy --help` wall time next to a bare interpreter and `import typer` (targets: ≤150 ms).
- `cozy run --json` wall time against the fake model server (zero latency) next to a
  script that makes the same call with the bare `ollama` SDK.
- `cozy run --json -m openai:fake hello` and `cozy --help` next to simonw/llm's
  `llm -m fake hello` / `llm --help` on the same fake upstream (OpenAI API), in
  alternating runs, each with a fresh data dir and context on (target: cozy <= 0.6x
  llm). `--llm auto` (default) builds llm once with uv in ~/.cache/cozy-bench/llm
  (`uv venv` + `uv pip install llm`, from the package index); `none` skips it; or
  give the path of an `llm` CLI. llm reaches the fake server through an entry in its
  extra-openai-models.yaml, and logs to its SQLite database as it does by default.
- Orchestrator overhead per turn, in-process: every stage but the model, with
  (a) an in-process model engine that answers instantly, so the whole turn is overhead,
  and (b) the fake HTTP server, minus the time the same SDK call takes alone.
  Target: p50 ≤ 5 ms.

`--baseline DIR` puts the same measurements of another cozy source tree next to this one
(make one with `git archive REV cozy profiles engines.yaml | tar -x -C DIR`): start-up
runs alternate new/baseline, and the per-turn runs alternate in chunks, each chunk in a
fresh process. Load average is printed with the figures (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

from cozy.core.orchestrator import ChatRequest
from cozy.core.types import (
    ChatResult,
    GenerationOptions,
    Message,
    ModelInfo,
    StreamChunk,
    ToolSpec,
    Usage,
)
from cozy.engines.base import AIEngine
from cozy.engines.registry import registry
from cozy.runtime import Runtime
from cozy.settings import Settings
from cozy.testing import FakeModelServer

PY = sys.executable


def pct(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def wall(cmd: list[str], n: int, env: dict[str, str] | None = None) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        subprocess.run(
            cmd,
            capture_output=True,
            env=env,
            check=False,
            stdin=subprocess.DEVNULL,
            cwd=tempfile.gettempdir(),  # `python -m` must not import cozy from the cwd
        )
        out.append((time.perf_counter() - t) * 1000)
    return out


def row(name: str, ms: Sequence[float], base: float | None = None) -> str:
    p50 = statistics.median(ms)
    ratio = f"{p50 / base:6.2f}x" if base else "       "
    return f"{name:<44} {p50:9.1f} {pct(ms, 0.9):9.1f} {ratio}"


class InstantModel(AIEngine):
    """Answers at once, in-process: isolates everything but the model."""

    provider_name = "instant"

    async def chat(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> ChatResult:
        return ChatResult("ok")

    async def chat_stream(
        self,
        messages: Sequence[Message],
        *,
        model: str,
        tools: Sequence[ToolSpec] | None = None,
        options: GenerationOptions | None = None,
    ) -> AsyncIterator[StreamChunk]:
        for word in ("The", " answer", " is", " four."):
            yield StreamChunk(delta=word)
        yield StreamChunk(finish_reason="stop", usage=Usage(20, 4))

    async def list_models(self) -> list[ModelInfo]:
        return [ModelInfo("instant", "instant")]


def engines_yaml(home: Path, url: str) -> None:
    (home / "engines.yaml").write_text(
        "ai:\n  provider: ollama\n  model: fake-model\n"
        f"  providers: {{ollama: {{host: '{url}'}}}}\n",
        encoding="utf-8",
    )


async def _turn(
    rt: Runtime, i: int, sid: str, model: str, stages: dict[str, list[float]] | None
) -> str:
    async for ev in rt.orchestrator.run(
        ChatRequest(f"turn {i}", session=sid, model=model, no_context=True)
    ):
        if ev.type == "failed":  # a broken tree must not look fast
            raise RuntimeError(f"turn failed: {ev}")
        if ev.type == "done":
            sid = ev.session_id  # type: ignore[attr-defined]
            if stages is not None:
                for stage, ms in ev.timings.items():  # type: ignore[attr-defined]
                    stages.setdefault(f"stage {stage}", []).append(ms)
    return sid


async def overhead(home: Path, url: str, turns: int) -> dict[str, list[float]]:
    """Per-turn times; the HTTP turns alternate with the bare SDK call (paired samples)."""
    registry.register("ai", "instant", InstantModel)
    engines_yaml(home, url)
    rt = await Runtime.open(Settings(home=home))
    res: dict[str, list[float]] = {"instant": [], "fake_http": [], "sdk_alone": [], "diff": []}
    stages: dict[str, list[float]] = {}
    try:
        sid = "new"
        for i in range(turns + 20):
            t = time.perf_counter()
            sid = await _turn(rt, i, sid, "instant:x", stages if i >= 20 else None)
            if i >= 20:  # warm-up excluded
                res["instant"].append((time.perf_counter() - t) * 1000)
        engine = await rt.router.engine("ollama")
        msgs = [Message("system", "x"), Message("user", "turn 1")]
        sid = "new"
        for i in range(turns + 20):
            t = time.perf_counter()
            sid = await _turn(rt, i, sid, "ollama:fake-model", None)
            turn_ms = (time.perf_counter() - t) * 1000
            t = time.perf_counter()
            async for _ in engine.chat_stream(msgs, model="fake-model"):
                pass
            sdk_ms = (time.perf_counter() - t) * 1000
            if i >= 20:
                res["fake_http"].append(turn_ms)
                res["sdk_alone"].append(sdk_ms)
                res["diff"].append(turn_ms - sdk_ms)
    finally:
        await rt.close()
    return {**res, **stages}


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "n/a"


def tree_env(env: dict[str, str], tree: str | None) -> dict[str, str]:
    """Environment that imports cozy from `tree` (None: this checkout)."""
    if tree is None:
        return env
    return {**env, "PYTHONPATH": os.pathsep.join(filter(None, [tree, env.get("PYTHONPATH")]))}


def startup(args: argparse.Namespace, fake_url: str, trees: list[tuple[str, str | None]]) -> None:
    envs: dict[str, dict[str, str]] = {}
    for name, tree in trees:  # one data dir per tree: their migrations may differ
        home = Path(tempfile.mkdtemp(prefix=f"cozy-bench-{name}-"))
        engines_yaml(home, fake_url)
        envs[name] = tree_env({**os.environ, "COZY_HOME": str(home)}, tree)
        wall([PY, "-m", "cozy", "run", "--json", "warm-up"], 1, envs[name])  # migrations
    print(f"{'start-up (wall, ms)':<44} {'p50':>9} {'p90':>9} {'ratio':>7}")
    bare = wall([PY, "-c", "pass"], args.runs)
    print(row("python -c pass (baseline)", bare))
    typer_ms = wall([PY, "-c", "import typer"], args.runs)
    print(row("python -c 'import typer'", typer_ms, statistics.median(bare)))
    sdk = (
        f"import ollama; c = ollama.Client(host={fake_url!r}); "
        "c.chat(model='fake-model', messages=[{'role': 'user', 'content': 'hi'}])"
    )
    sdk_ms = wall([PY, "-c", sdk], args.runs)
    help_ms: dict[str, list[float]] = {name: [] for name, _ in trees}
    run_ms: dict[str, list[float]] = {name: [] for name, _ in trees}
    for _ in range(args.runs):  # alternate the trees so load changes hit both alike
        for name, _tree in trees:
            help_ms[name] += wall([PY, "-m", "cozy", "--help"], 1, envs[name])
            run_ms[name] += wall([PY, "-m", "cozy", "run", "--json", "hi"], 1, envs[name])
    for name, _ in trees:
        label = f"cozy --help [{name}]  (target <= 150 ms)"
        print(row(label, help_ms[name], statistics.median(bare)))
    print(row("bare ollama SDK call (baseline)", sdk_ms))
    for name, _ in trees:
        print(row(f"cozy run --json 'hi' [{name}]", run_ms[name], statistics.median(sdk_ms)))
    print(f"  load average: {loadavg()}")


def llm_cli(choice: str) -> str | None:
    """The `llm` CLI to run: a given path, none, or (auto) a venv built once with uv."""
    if choice == "none":
        return None
    if choice != "auto":
        return choice
    venv = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "cozy-bench/llm"
    cli = venv / "bin/llm"
    if cli.exists():
        return str(cli)
    here = Path(PY).parent / "uv"
    uv = str(here) if here.exists() else shutil.which("uv")
    if uv is None:
        print("llm skipped: uv is not installed (see install.sh)", file=sys.stderr)
        return None
    print(f"building llm's venv in {venv} (once)", file=sys.stderr, flush=True)
    try:
        subprocess.run([uv, "venv", "-q", "--python", PY, str(venv)], check=True)
        subprocess.run(
            [uv, "pip", "install", "-q", "--python", str(venv / "bin/python"), "llm"], check=True
        )
    except subprocess.CalledProcessError as exc:
        print(f"llm skipped: building its venv failed ({exc})", file=sys.stderr)
        shutil.rmtree(venv, ignore_errors=True)
        return None
    return str(cli)


def versus_llm(args: argparse.Namespace, fake: FakeModelServer, llm: str) -> None:
    """cozy and llm on the same fake OpenAI-compatible upstream, alternating runs."""
    base = fake.openai_base_url
    tmp = Path(tempfile.mkdtemp(prefix="cozy-bench-llm-"))
    llm_home = tmp / "llm"
    llm_home.mkdir()
    (llm_home / "extra-openai-models.yaml").write_text(
        f"- model_id: fake\n  model_name: fake\n  api_base: '{base}'\n  api_key_name: fake\n",
        encoding="utf-8",
    )
    (llm_home / "keys.json").write_text(json.dumps({"fake": "bench"}), encoding="utf-8")
    cozy_home = tmp / "cozy"
    cozy_home.mkdir()
    quiet = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "COZY_"))}
    llm_env = {**quiet, "LLM_USER_PATH": str(llm_home)}
    cozy_env = {
        **quiet,
        "COZY_HOME": str(cozy_home),
        "OPENAI_BASE_URL": base,
        "OPENAI_API_KEY": "bench",
    }
    cozy_run = [PY, "-m", "cozy", "run", "--json", "-m", "openai:fake", "hello"]
    llm_run = [llm, "-m", "fake", "hello"]
    for cmd, env in ((cozy_run, cozy_env), (llm_run, llm_env)):  # migrations, first logs
        out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
        if out.returncode != 0 or "You said" not in out.stdout:
            raise RuntimeError(f"{cmd[0]} failed against the fake server: {out.stderr[-500:]}")
    res: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    runs = (
        ("cozy run", cozy_run, cozy_env),
        ("llm", llm_run, llm_env),
        ("cozy help", [PY, "-m", "cozy", "--help"], cozy_env),
        ("llm help", [llm, "--help"], llm_env),
    )
    for _ in range(args.runs):
        for key, cmd, env in runs:
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            res.setdefault(key, []).extend(wall(cmd, 1, env))
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
            cpu.setdefault(key, []).append(used * 1000)
    version = subprocess.run([llm, "--version"], capture_output=True, text=True, env=llm_env)
    print()
    print(
        f"cozy vs {version.stdout.strip()} on the same fake upstream, {args.runs} alternating runs"
    )
    print(f"{'command (median ms)':<44} {'cozy':>9} {'llm':>9} {'ratio':>7}")
    for label, a, b in (
        ("run --json -m openai:fake hello (ctx on)", "cozy run", "llm"),
        ("--help", "cozy help", "llm help"),
    ):
        for what, table in (("wall", res), ("CPU", cpu)):
            ca, cb = statistics.median(table[a]), statistics.median(table[b])
            print(f"{label + ' ' + what:<44} {ca:9.1f} {cb:9.1f} {ca / cb:6.2f}x")
    print("  target: cozy run <= 0.60x llm (CPU time = user+system of the process and")
    print("  its children: steadier than wall time when the machine is shared)")
    print(f"  load average: {loadavg()}")


def child_overhead(turns: int) -> None:
    """One chunk of the per-turn measurement, printed as JSON (run in a fresh process)."""
    fake = FakeModelServer().start()
    # the fake server's Litestar app sets the root logger to INFO; cozy runs at WARNING
    logging.getLogger().setLevel(logging.WARNING)
    home = Path(tempfile.mkdtemp(prefix="cozy-bench-"))
    try:
        res = asyncio.run(overhead(home, fake.url, turns))
    finally:
        fake.stop()
    print(json.dumps(res))


def per_turn(args: argparse.Namespace, trees: list[tuple[str, str | None]]) -> None:
    chunks = max(1, args.chunks)
    size = max(1, args.turns // chunks)
    res: dict[str, dict[str, list[float]]] = {name: {} for name, _ in trees}
    load_before = loadavg()
    for _ in range(chunks):
        for name, tree in trees:
            out = subprocess.run(
                [PY, __file__, "--child-overhead", str(size)],
                capture_output=True,
                text=True,
                check=True,
                env=tree_env(dict(os.environ), tree),
                cwd=tempfile.gettempdir(),  # never import cozy from the current directory
            )
            for key, values in json.loads(out.stdout.strip().splitlines()[-1]).items():
                res[name].setdefault(key, []).extend(values)
    names = [name for name, _ in trees]
    head = "".join(f" {n + ' p50':>12} {n + ' p99':>12}" for n in names)
    ratio = "  ratio p50" if len(names) > 1 else ""
    print()
    print(f"orchestrator per turn, {size * chunks} turns (ms){'':<14}{head}{ratio}")

    def line(label: str, key: str) -> None:
        cells, p50s = "", []
        for n in names:
            v = res[n].get(key) or [0.0]
            p50s.append(statistics.median(v))
            cells += f" {statistics.median(v):12.2f} {pct(v, 0.99):12.2f}"
        r = f"  {p50s[0] / p50s[1]:8.2f}x" if len(p50s) > 1 and p50s[1] else ""
        print(f"  {label:<44}{cells}{r}")

    line("whole turn, in-process model (= overhead)", "instant")
    line("whole turn, fake HTTP model", "fake_http")
    line("same SDK call alone (model time)", "sdk_alone")
    print("  where the in-process turn goes (per stage, from Done.timings):")
    for stage in ("prepare", "context", "tools", "generate", "persist"):
        line(f"  {stage}", f"stage {stage}")
    line("overhead = HTTP turn - SDK call next to it", "diff")
    print("  target: overhead p50 <= 5 ms")
    print(f"  load average: before {load_before}, after {loadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=500)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--chunks", type=int, default=5, help="per-turn runs alternate in chunks")
    ap.add_argument("--baseline", help="a cozy source tree to measure side by side")
    ap.add_argument("--llm", default="auto", help="auto, none, or an `llm` CLI path")
    ap.add_argument("--only-llm", action="store_true", help="just the comparison with llm")
    ap.add_argument("--child-overhead", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child_overhead:
        child_overhead(args.child_overhead)
        return
    trees: list[tuple[str, str | None]] = [("new", None)]
    if args.baseline:
        trees.append(("baseline", str(Path(args.baseline).resolve())))
    llm = llm_cli(args.llm)
    fake = FakeModelServer(models=("fake-model", "fake-embed", "fake")).start()
    logging.getLogger().setLevel(logging.WARNING)
    try:
        if not args.only_llm:
            startup(args, fake.url, trees)
        if llm is not None:
            versus_llm(args, fake, llm)
    finally:
        fake.stop()
    if not args.only_llm:
        per_turn(args, trees)


if __name__ == "__main__":
    main()
