"""The voice round trip a user waits for: a spoken question in, the spoken answer out.

    .venv/bin/python bench/bench_voice_roundtrip.py [--runs 3]

Two lanes side by side, runs interleaved (so load changes hit both alike):
- **embedded**: nothing configured (no Ollama, no OpenAI variables), so the answer comes
  from the embedded model (SmolLM2-135M via llama.cpp, `ai.local`);
- **fake**: cozy's fake model server (a fixed answer, no generation time), which leaves
  the orchestrator, Whisper and Piper.

Each lane is measured two ways:
1. the real CLI, one process per question, as a user runs it:
   `cozy voice --input q.wav --output a.wav --json` (the question spoken by espeak-ng);
   the process's wall time and the turn's own timings from its JSON (measured from the
   end of the recorded speech: transcript, first token, first audio, total);
2. a warm engine in one process (what the server or a `cozy voice` loop gives after the
   first turn): the same `voice_turn` with models loaded once, median of `--runs`.

Goal (issue #19): first answer audio soon after the first sentence (<= 150 ms after it);
end of speech -> first audio is reported. The machine's load average is printed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cozy.testing import FakeModelServer

QUESTION = "what is the capital of France"
FAKE_ANSWER = "The capital of France is Paris. It is on the Seine."
ROOT = Path(__file__).resolve().parents[1]
COZY = ROOT / ".venv" / "bin" / "cozy"
KEYS = ("transcript_s", "first_token_s", "first_audio_s", "sentence_to_audio_s", "total_s")


def make_question(path: Path) -> None:
    subprocess.run(["espeak-ng", "-v", "en-us", "-w", str(path), QUESTION], check=True)


def base_env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "COZY_"))}
    env.update(
        COZY_HOME=str(home),
        OLLAMA_HOST="http://127.0.0.1:9",  # no Ollama: auto picks the embedded model
        COZY_BACKGROUND_JOBS="0",  # the turn's time, not the memory jobs after it
        PYTHONPATH=str(ROOT),
        HF_HUB_OFFLINE="1",
    )
    return env


def fake_engines(home: Path, url: str) -> None:
    (home / "engines.yaml").write_text(
        f"ai:\n  provider: openai\n  model: fake-model\n  providers:\n"
        f"    openai: {{base_url: '{url}/v1', api_key: test-key}}\n",
        encoding="utf-8",
    )


def cli_turn(home: Path, question: Path) -> dict[str, Any]:
    out = home / "a.wav"
    started = time.perf_counter()
    proc = subprocess.run(
        [str(COZY), "voice", "--input", str(question), "--output", str(out), "--json"],
        capture_output=True,
        text=True,
        env=base_env(home),
        timeout=600,
    )
    wall = time.perf_counter() - started
    if proc.returncode != 0:
        raise SystemExit(f"cozy voice failed ({proc.returncode}): {proc.stderr[-2000:]}")
    data = json.loads(proc.stdout.strip().splitlines()[-1])
    data["wall_s"] = wall
    return data


async def warm_turns(home: Path, question: Path, runs: int) -> list[dict[str, Any]]:
    os.environ.update({k: v for k, v in base_env(home).items() if k != "PYTHONPATH"})
    for key in [k for k in os.environ if k.startswith("OPENAI_")]:
        del os.environ[key]
    from cozy.core.events import TextDelta
    from cozy.core.orchestrator import ChatRequest
    from cozy.core.types import Caller
    from cozy.engines.voice.audio import decode
    from cozy.engines.voice.engine import LocalVoice
    from cozy.engines.voice.io import WavSink
    from cozy.engines.voice.pipeline import voice_turn
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    rt = await Runtime.open(Settings(home=home))
    voice = await rt.engine("voice")
    assert isinstance(voice, LocalVoice)
    clip = decode(question)

    async def ask(text: str):  # type: ignore[no-untyped-def]
        async for event in rt.orchestrator.run(
            ChatRequest(prompt=text, caller=Caller(face="voice"))
        ):
            if isinstance(event, TextDelta):
                yield event.text

    results = []
    try:
        for _ in range(runs + 1):  # the first warms the models up
            sink = WavSink(home / "w.wav", voice.output_rate)
            result = await voice_turn(voice, clip, ask, sink)
            await sink.close()
            results.append(
                {**result.timings, "transcript": result.transcript, "answer": result.answer}
            )
    finally:
        await rt.close()
    return results[1:]


def med(rows: list[dict[str, Any]], key: str) -> str:
    values = [r.get("timings", r)[key] for r in rows if key in r.get("timings", r)]
    return f"{statistics.median(values) * 1000:.0f} ms" if values else "-"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(os.popen("uptime").read().strip(), flush=True)
    rows: list[tuple[str, str, str]] = []
    with tempfile.TemporaryDirectory() as tmp, FakeModelServer() as fake:
        root = Path(tmp)
        fake.add_rule(user_contains="capital", text=FAKE_ANSWER)
        question = root / "q.wav"
        make_question(question)
        homes = {"embedded": root / "embedded", "fake": root / "fake"}
        for home in homes.values():
            home.mkdir()
        fake_engines(homes["fake"], fake.url)
        cli: dict[str, list[dict[str, Any]]] = {name: [] for name in homes}
        for _ in range(args.runs):
            for name, home in homes.items():
                cli[name].append(cli_turn(home, question))
                print(f"  cli {name}: {cli[name][-1]['timings']} wall "
                      f"{cli[name][-1]['wall_s']:.1f}s", file=sys.stderr, flush=True)  # fmt: skip
        for name, got in cli.items():
            last = got[-1]
            rows.append((f"{name}: CLI heard / answered", repr(last["transcript"]),
                         repr(last["answer"][:60])))  # fmt: skip
            walls = [r["wall_s"] for r in got]
            wall = f"{statistics.median(walls):.2f} s"
            rows.append(
                (f"{name}: CLI process wall (load + turn)", wall, f"min {min(walls):.2f} s")
            )
            for key in KEYS:
                rows.append((f"{name}: CLI end of speech -> {key[:-2].replace('_', ' ')}",
                             med(got, key), ""))  # fmt: skip
        for name, home in homes.items():
            got = asyncio.run(warm_turns(home, question, args.runs))
            for key in KEYS:
                rows.append((f"{name}: warm end of speech -> {key[:-2].replace('_', ' ')}",
                             med(got, key), ""))  # fmt: skip
    width = max(len(r[0]) for r in rows)
    print(f"{'measure':<{width}}  {'median':>12}  note")
    print("-" * (width + 40))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>12}  {note}")
    print(os.popen("uptime").read().strip())


if __name__ == "__main__":
    main()
