"""`/v1/realtime` latency and capacity, against `cozy serve` as its own process.

    .venv/bin/python bench/bench_realtime.py [--turns 5] [--conc 1,2,4,8,16] [--grammar]

The model is the fake model server (in this process, zero latency unless said), so
the figures are cozy's own cost: server VAD, STT (pocketsphinx), orchestrator, TTS
(espeak-ng), framing. Speech is espeak-ng audio streamed in real time (40 ms appends)
like a microphone would. Reported (p50 / p95 over the turns):

  end of speech → speech_stopped      the VAD's silence window (silence_duration_ms) + push
  speech_stopped → transcript         STT of the committed turn
  speech_stopped → first audio delta  commit + STT + orchestrator + first TTS sentence
  end of speech → first audio delta   what a user waits (target ≤ 300 ms + silence window
                                      + the model's own time to first sentence)
  barge-in: speech_started → response.done (cancelled), client side (target ≤ 100 ms)
  concurrency: N sessions speaking at once on this machine's cores: end of speech →
  first audio p50/p95, and the server's CPU share, per N.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import websockets

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from voice_support import COMMANDS, concat, espeak, silence

from cozy.engines.voice.audio import Clip
from cozy.testing import FakeModelServer

RATE = 24_000
CHUNK_MS = 40
PHRASES = ["what time is it", "turn on the kitchen lights", "play some music", "call mom"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def speech(text: str) -> tuple[bytes, float]:
    """PCM16 24 kHz with 0.4 s silence before and 1.2 s after; and where speech ends (s)."""
    voice = espeak(text).at(RATE)
    loud = np.flatnonzero(np.abs(voice.samples) > 0.02)  # espeak pads its own silence
    spoken = (loud[-1] + 1) / RATE if len(loud) else voice.seconds
    clip = concat(silence(0.4, RATE), voice, silence(1.2, RATE))
    return Clip(clip.samples, RATE).pcm16(), 0.4 + spoken


def start_server(
    home: Path, fake_url: str, grammar: bool, workers: int = 1
) -> tuple[subprocess.Popen[bytes], str]:
    stt = "{provider: pocketsphinx" + (", grammar: " + json.dumps(COMMANDS) if grammar else "")
    (home / "engines.yaml").write_text(
        "ai:\n  provider: openai\n  model: openai:fake\n  providers:\n"
        f"    openai: {{base_url: '{fake_url}/v1', api_key: bench, max_retries: 0}}\n"
        "knowledge: {provider: none}\nprofile: {provider: none}\nmemory: {provider: none}\n"
        f"voice:\n  provider: local\n  stt: {stt}}}\n",
        encoding="utf-8",
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("COZY_")}
    env.update(
        COZY_HOME=str(home),
        COZY_CONFIG=str(home / "engines.yaml"),
        COZY_LOG_LEVEL="WARNING",
        COZY_SERVER_RATE_LIMIT_RPM="0",
        COZY_SERVER_RATE_LIMIT_TPM="0",
        COZY_SERVER_IP_RATE_LIMIT_RPM="0",
        COZY_SERVER_REALTIME_MAX_SESSIONS="1000",
        HF_HUB_OFFLINE="1",
    )
    port = free_port()
    cmd = [sys.executable, "-m", "cozy", "serve", "--no-auth", "--port", str(port)]
    cmd += ["--workers", str(workers)]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                return proc, url
        except httpx.HTTPError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError("cozy serve did not start")


class Conn:
    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.events: list[tuple[float, dict[str, Any]]] = []
        self.by_type: dict[str, list[float]] = {}
        self.changed = asyncio.Condition()
        self.reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        async for raw in self.ws:
            now = time.perf_counter()
            kind = (
                json.loads(raw)["type"]
                if b'"response.output_audio.delta"'
                not in (raw if isinstance(raw, bytes) else raw.encode()[:80])
                else "response.output_audio.delta"
            )
            self.events.append((now, {"type": kind}))
            self.by_type.setdefault(kind, []).append(now)
            async with self.changed:
                self.changed.notify_all()

    def _find(self, kind: str, after: float) -> float | None:
        return next((t for t in self.by_type.get(kind, ()) if t >= after), None)

    async def wait(self, kind: str, after: float = 0.0, limit: float = 60.0) -> float:
        async with asyncio.timeout(limit), self.changed:
            await self.changed.wait_for(lambda: self._find(kind, after) is not None)
        found = self._find(kind, after)
        assert found is not None
        return found

    async def send(self, event: dict[str, Any]) -> None:
        await self.ws.send(json.dumps(event))

    async def stream(self, pcm: bytes) -> float:
        """Send like a microphone (real time); returns when the first byte was sent."""
        step = RATE * 2 * CHUNK_MS // 1000
        t0 = time.perf_counter()
        for n, i in enumerate(range(0, len(pcm), step)):
            await self.send(
                {
                    "type": "input_audio_buffer.append",
                    "audio": base64.b64encode(pcm[i : i + step]).decode(),
                }
            )
            delay = t0 + (n + 1) * CHUNK_MS / 1000 - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
        return t0

    async def close(self) -> None:
        await self.ws.close()
        self.reader.cancel()


async def connect(url: str, silence_ms: int) -> Conn:
    ws = await websockets.connect(
        url.replace("http", "ws") + "/v1/realtime?model=cozy", max_size=None
    )
    conn = Conn(ws)
    await conn.wait("session.created")
    await conn.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "audio": {
                    "input": {
                        "turn_detection": {"type": "server_vad", "silence_duration_ms": silence_ms}
                    }
                },
            },
        }
    )
    await conn.wait("session.updated")
    return conn


async def voice_turn(url: str, text: str, silence_ms: int) -> dict[str, float]:
    pcm, speech_end = speech(text)
    conn = await connect(url, silence_ms)
    try:
        t0 = await conn.stream(pcm)
        end = t0 + speech_end
        stopped = await conn.wait("input_audio_buffer.speech_stopped", t0)
        heard = await conn.wait("conversation.item.input_audio_transcription.completed", t0)
        first = await conn.wait("response.output_audio.delta", t0)
        await conn.wait("response.done", t0)
    finally:
        await conn.close()
    return {
        "vad": stopped - end,
        "stt": heard - stopped,
        "server": first - stopped,
        "total": first - end,
    }


async def barge_in(url: str, fake: FakeModelServer) -> tuple[float, float, int]:
    fake.tokens_per_second = 15
    fake.queue_reply(" ".join(f"This is sentence {i} of a long answer." for i in range(30)))
    conn = await connect(url, 500)
    try:
        await conn.send(
            {
                "type": "conversation.item.create",
                "item": {
                    "type": "message",
                    "role": "user",
                    "content": [{"type": "input_text", "text": "talk"}],
                },
            }
        )
        await conn.send({"type": "response.create"})
        await conn.wait("response.output_audio.delta")
        pcm, _ = speech("stop")
        t0 = time.perf_counter()
        sender = asyncio.create_task(conn.stream(pcm))
        started = await conn.wait("input_audio_buffer.speech_started", t0)
        done = await conn.wait("response.done", t0)
        late = sum(
            1
            for t, e in conn.events
            if t > started and e["type"] == "response.output_audio.delta" and t < done
        )
        await sender
    finally:
        await conn.close()
        fake.tokens_per_second = None
    return done - started, started - (t0 + 0.4), late


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def ms(values: list[float]) -> str:
    return f"{statistics.median(values) * 1000:7.0f} / {pct(values, 0.95) * 1000:5.0f} ms"


def tree(pid: int) -> list[Any]:
    import psutil

    root = psutil.Process(pid)
    return [root, *root.children(recursive=True)]


def cpu_seconds(pid: int) -> float:
    total = 0.0
    for p in tree(pid):
        with contextlib.suppress(Exception):
            t = p.cpu_times()
            total += t.user + t.system
    return total


def rss_mb(pid: int) -> float:
    return sum(p.memory_info().rss for p in tree(pid)) / 1e6


async def concurrency(url: str, pid: int, n: int, workers: int) -> tuple[str, str, str]:
    cpu0, wall0 = cpu_seconds(pid), time.perf_counter()
    turns = await asyncio.gather(
        *(voice_turn(url, PHRASES[i % len(PHRASES)], 500) for i in range(n))
    )
    share = (cpu_seconds(pid) - cpu0) / (time.perf_counter() - wall0)
    return (
        f"{n:>2} sessions speaking at once, {workers} worker(s): end of speech → first audio",
        ms([t["total"] for t in turns]),
        f"server CPU {share:.2f} cores",
    )


async def held(url: str, pid: int, n: int) -> tuple[str, str, str]:
    before = rss_mb(pid)
    idle = [await connect(url, 500) for _ in range(n)]
    try:
        turn = await voice_turn(url, "what time is it", 500)
        grown = rss_mb(pid) - before
    finally:
        for conn in idle:
            await conn.close()
    return (
        f"{n} idle sessions held + 1 speaking: end of speech → first audio",
        f"{turn['total'] * 1000:7.0f} ms",
        f"server RSS +{grown:.0f} MB ({grown / n * 1000:.0f} kB/session)",
    )


async def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--turns", type=int, default=6)
    ap.add_argument("--conc", default="1,2,4,8,16")
    ap.add_argument("--grammar", action="store_true", help="pocketsphinx in command mode")
    ap.add_argument("--workers", type=int, default=2, help="also sweep with N workers")
    ap.add_argument("--idle", type=int, default=100, help="idle sessions held at once")
    args = ap.parse_args()
    fake = FakeModelServer().start()
    with tempfile.TemporaryDirectory() as tmp:
        proc, url = start_server(Path(tmp), fake.url, args.grammar)
        try:
            await voice_turn(url, PHRASES[0], 500)  # warm up models
            rows: list[tuple[str, str, str]] = []
            for silence_ms in (300, 500):
                turns = [
                    await voice_turn(url, PHRASES[i % len(PHRASES)], silence_ms)
                    for i in range(args.turns)
                ]
                label = f"(silence {silence_ms} ms)"
                rows.append(
                    (
                        f"end of speech → speech_stopped {label}",
                        ms([t["vad"] for t in turns]),
                        "≈ silence window",
                    )
                )
                rows.append(
                    (f"speech_stopped → transcript {label}", ms([t["stt"] for t in turns]), "STT")
                )
                rows.append(
                    (
                        f"speech_stopped → first audio {label}",
                        ms([t["server"] for t in turns]),
                        "≤ 300 ms + model",
                    )
                )
                rows.append(
                    (
                        f"end of speech → first audio {label}",
                        ms([t["total"] for t in turns]),
                        "user-perceived",
                    )
                )
            stops, detects, lates = [], [], []
            for _ in range(max(3, args.turns // 2)):
                stop, detect, late = await barge_in(url, fake)
                stops.append(stop)
                detects.append(detect)
                lates.append(late)
            rows.append(("barge-in: speech_started → response.done", ms(stops), "≤ 100 ms"))
            rows.append(
                ("barge-in: speech onset → speech_started", ms(detects), "VAD (120 ms min speech)")
            )
            rows.append(
                (
                    "barge-in: audio deltas after speech_started",
                    f"{max(lates):>22}",
                    "max; 0 wanted",
                )
            )
            for n in [int(x) for x in args.conc.split(",")]:
                rows.append(await concurrency(url, proc.pid, n, 1))
            rows.append(await held(url, proc.pid, args.idle))
        finally:
            proc.terminate()
            proc.wait(15)
        if args.workers > 1:
            proc, url = start_server(Path(tmp), fake.url, args.grammar, args.workers)
            try:
                for _ in range(args.workers * 2):  # warm up every worker
                    await voice_turn(url, PHRASES[0], 500)
                for n in [int(x) for x in args.conc.split(",")]:
                    rows.append(await concurrency(url, proc.pid, n, args.workers))
            finally:
                proc.terminate()
                proc.wait(15)
        fake.stop()
    width = max(len(r[0]) for r in rows)
    print(f"cores: {os.cpu_count()}  STT: pocketsphinx{' (grammar)' if args.grammar else ''}")
    print(f"{'measure':<{width}}  {'p50 / p95':>22}  target/note")
    print("-" * (width + 45))
    for name, value, note in rows:
        print(f"{name:<{width}}  {value:>22}  {note}")


if __name__ == "__main__":
    asyncio.run(main())
