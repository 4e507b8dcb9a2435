"""`cozy chat` responsiveness: typing while an answer streams, and start-up time.

    .venv/bin/python bench/bench_tui.py [--tokens 2000] [--tps 200] [--keys 300]

The fake model streams `--tokens` tokens at `--tps` tokens/s while keys are typed
into the prompt at ~30 keys/s (the app runs headless under Textual's Pilot, with
the real runtime, SQLite and HTTP streaming). Per key: the time from posting the
key until the app is idle again with the character in the prompt (key to screen).
The same typing with no answer streaming gives the baseline, in the same run.
Targets (issue #7): 0 dropped keys, key-to-screen p99 <= 50 ms, start-up <= 1 s.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

QUIET = (
    "knowledge: {provider: none}\nmemory: {provider: none}\nprofile: {provider: none}\n"
    "embed: {provider: none}\nvoice: {provider: none}\n"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def type_keys(pilot: Any, prompt: Any, n: int, rate: float) -> tuple[list[float], int]:
    """Type n letters; returns per-key latencies (ms) and how many keys were dropped.

    Keys go in through the driver, as from a terminal (Pilot.press would also wait
    for the whole process to go idle, which never happens while an answer streams).
    A key counts as on screen when the prompt holds the character and the prompt's
    repaint has been composited (it is no longer in the screen's dirty set).
    """
    from textual import events

    letters = (string.ascii_lowercase * (n // 26 + 1))[:n]
    prompt.clear()
    await pilot.pause()
    driver = pilot.app._driver
    screen = pilot.app.screen
    latencies: list[float] = []
    for ch in letters:
        started = time.perf_counter()
        driver.send_message(events.Key(ch, ch))
        while not prompt.text.endswith(ch) or prompt in screen._dirty_widgets:
            await asyncio.sleep(0)
            if time.perf_counter() - started > 5:
                break  # dropped
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    dropped = n - len(prompt.text)
    return latencies, dropped


class GcPauses:
    """Garbage-collector pauses (ms) while `on`: a full collection can freeze the UI."""

    def __init__(self) -> None:
        self.on = False
        self.pauses: list[float] = []
        self.full = 0  # generation-2 (full) collections
        self._started = 0.0
        gc.callbacks.append(self._callback)

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self.on:
            self.pauses.append((time.perf_counter() - self._started) * 1000)
            self.full += info.get("generation") == 2

    def close(self) -> None:
        gc.callbacks.remove(self._callback)


async def watch_turn(app: Any, started: float) -> float:
    """Seconds from `started` until the running turn ends."""
    while app.busy:  # noqa: ASYNC110 - polling a UI state
        await asyncio.sleep(0.005)
    return time.perf_counter() - started


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_port(port: int) -> None:
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.1)
    raise RuntimeError("the fake model server did not start")


def make_answer(tokens: int) -> str:
    """A Markdown answer of about `tokens` tokens (one per word, as the fake counts):
    paragraphs of 60 words, a fenced code block after every third paragraph."""
    parts: list[str] = []
    words = 0
    n = 0
    while words < tokens:
        size = min(60, tokens - words)
        parts.append(" ".join(f"word{(words + i) % 97}" for i in range(size)))
        words += size
        n += 1
        if n % 3 == 0 and words + 12 <= tokens:
            parts.append("```python\n" + "\n".join(f"x{i} = {i}" for i in range(4)) + "\n```")
            words += 12
    return "\n\n".join(parts)


async def bare_stream(home: Path, prompt: str) -> float:
    """Seconds to consume the same answer through the orchestrator alone (no UI)."""
    from cozy.core.orchestrator import ChatRequest
    from cozy.runtime import Runtime
    from cozy.settings import Settings

    rt = await Runtime.open(Settings(home=home))
    try:
        started = time.perf_counter()
        async for _ in rt.orchestrator.run(ChatRequest(prompt=prompt)):
            pass
        return time.perf_counter() - started
    finally:
        await rt.close()


async def startup(home: Path, url: str) -> tuple[float, float]:
    """(ms to an interactive prompt, ms until the runtime is open and the sidebar loaded)."""
    from cozy.settings import Settings
    from cozy.tui.app import CozyApp
    from cozy.tui.widgets.prompt import PromptArea

    started = time.perf_counter()
    app = CozyApp(Settings(home=home), check_model=False)
    async with app.run_test(size=(100, 30)) as pilot:
        while not isinstance(app.focused, PromptArea):  # noqa: ASYNC110 - polling a UI state
            await asyncio.sleep(0.001)
        interactive = (time.perf_counter() - started) * 1000
        await app.ready.wait()
        await app.workers.wait_for_complete()
        await pilot.pause()
        ready = (time.perf_counter() - started) * 1000
    return interactive, ready


async def main(args: argparse.Namespace) -> None:
    from helpers import write_engines

    from cozy.settings import Settings
    from cozy.tui.app import CozyApp
    from cozy.tui.widgets.messages import ChatLog
    from cozy.tui.widgets.prompt import PromptArea

    # the fake model runs in its own process, as a real model server would (in-process,
    # its thread would fight the app for the GIL and pace tokens late)
    port = free_port()
    fake = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "cozy.testing", "--port", str(port), "--tps", str(args.tps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    home = Path(tempfile.mkdtemp(prefix="cozy-bench-tui-"))
    write_engines(home, url, QUIET)
    gcp: GcPauses | None = None
    try:
        await wait_port(port)
        starts = [await startup(home, url) for _ in range(args.starts)]
        prompt_text = make_answer(args.tokens)  # the fake answers "You said: <prompt>"
        answer = f"You said: {prompt_text}"
        bare_s = await bare_stream(home, prompt_text)
        gcp = GcPauses()
        app = CozyApp(Settings(home=home), check_model=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await app.ready.wait()
            prompt = app.query_one(PromptArea)
            idle_lat, idle_drop = await type_keys(pilot, prompt, args.keys, args.rate)
            prompt.load_text(prompt_text)
            t_enter = time.perf_counter()
            await pilot.press("enter")
            chat = app.query_one(ChatLog)
            while chat.last_answer() is None:  # noqa: ASYNC110 - polling a UI state
                await asyncio.sleep(0.005)
            turn = asyncio.create_task(watch_turn(app, t_enter))
            gcp.on = True
            busy_lat, busy_drop = await type_keys(pilot, prompt, args.keys, args.rate)
            gcp.on = False
            still_streaming = app.busy
            stream_s = await turn
            await app.workers.wait_for_complete()
            answer_view = chat.last_answer()
            got = answer_view.text if answer_view else ""
    finally:
        if gcp is not None:
            gcp.close()
        fake.terminate()
        fake.wait(5)
    rows = [
        ("keys typed", f"{args.keys}", f"{args.keys}", ""),
        ("dropped keys", f"{idle_drop}", f"{busy_drop}", "target 0"),
        (
            "key-to-screen p50 ms",
            f"{pct(idle_lat, 0.5):.1f}",
            f"{pct(busy_lat, 0.5):.1f}",
            f"x{pct(busy_lat, 0.5) / pct(idle_lat, 0.5):.2f}",
        ),
        (
            "key-to-screen p99 ms",
            f"{pct(idle_lat, 0.99):.1f}",
            f"{pct(busy_lat, 0.99):.1f}",
            f"x{pct(busy_lat, 0.99) / pct(idle_lat, 0.99):.2f}; target <= 50",
        ),
        ("key-to-screen max ms", f"{max(idle_lat):.1f}", f"{max(busy_lat):.1f}", ""),
    ]
    print(
        f"\ncozy chat bench: {args.tokens} tokens at {args.tps:g} tok/s, "
        f"typing {args.rate:g} keys/s"
    )
    print(f"{'':24}{'idle':>10}{'streaming':>12}  note")
    for name, a, b, note in rows:
        print(f"{name:24}{a:>10}{b:>12}  {note}")
    print(
        f"\nstream: {len(got):,} chars; in the app {stream_s:.1f} s from enter to done, "
        f"orchestrator alone {bare_s:.1f} s (x{stream_s / bare_s:.2f}); typing ran "
        f"{'entirely during' if still_streaming else 'partly after'} the stream; "
        f"answer complete: {got == answer}"
    )
    pauses = gcp.pauses if gcp else []
    print(
        f"GC pauses while typing during the stream: {len(pauses)} "
        f"({gcp.full if gcp else 0} full), max {max(pauses, default=0):.1f} ms, "
        f"total {sum(pauses):.0f} ms"
    )
    inter = [s[0] for s in starts]
    ready = [s[1] for s in starts]
    print(
        f"start-up to an interactive prompt: median {statistics.median(inter):.0f} ms "
        f"(min {min(inter):.0f}, max {max(inter):.0f}; target <= 1000)"
    )
    print(
        f"start-up until runtime open + sessions listed: median {statistics.median(ready):.0f} ms"
    )
    print(
        "(in-process, after imports; `cozy chat` also pays Python + textual imports: "
        "measure with `python -X importtime -c 'import cozy.tui.app'`)"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--tps", type=float, default=200)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30, help="keys per second")
    parser.add_argument("--starts", type=int, default=5)
    asyncio.run(main(parser.parse_args()))
