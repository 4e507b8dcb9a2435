"""`cozy chat` responsiveness: typing while an answer streams, and start-up time.

    .venv/bin/python bench/bench_tui.py [--runs 3] [--baseline REV] [--history 0]
        [--tokens 2000] [--tps 200] [--keys 300]

The fake model streams `--tokens` tokens at `--tps` tokens/s while keys are typed
into the prompt at ~30 keys/s (the app runs headless under Textual's Pilot, with
the real runtime, SQLite and HTTP streaming). Per key: the time from posting the
key until the character is in the prompt and repainted (key to screen). The same
typing with no answer streaming gives the idle figure, in the same run.

Each run is its own process (a fresh app and heap). `--baseline REV` also runs the
app of git revision REV (its `cozy/` exported with `git archive` to a temporary
directory, first on the child's PYTHONPATH), alternating with the working tree's, so
both see the same machine load; `--history N` opens a session that already holds N
earlier question/answer pairs (the cost of a long session). The load average is
printed with every run. Targets (issue #7): 0 dropped keys, key-to-screen p99 <= 50
ms, start-up <= 1 s.
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

QUIET = (
    "knowledge: {provider: none}\nmemory: {provider: none}\nprofile: {provider: none}\n"
    "embed: {provider: none}\nvoice: {provider: none}\n"
)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


async def type_keys(
    pilot: Any, prompt: Any, n: int, rate: float
) -> tuple[list[float], int, list[bool]]:
    """Type n letters; returns per-key latencies (ms), how many keys were dropped and,
    per key, whether an answer was streaming when it was sent.

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
    streaming: list[bool] = []
    for ch in letters:
        started = time.perf_counter()
        streaming.append(pilot.app.busy)
        driver.send_message(events.Key(ch, ch))
        while not prompt.text.endswith(ch) or prompt in screen._dirty_widgets:
            await asyncio.sleep(0)
            if time.perf_counter() - started > 5:
                break  # dropped
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(max(0.0, 1 / rate - (time.perf_counter() - started)))
    dropped = n - len(prompt.text)
    return latencies, dropped, streaming


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


def write_config(home: Path, url: str) -> None:
    """engines.yaml for the fake model, every other engine off (no tests/ import, so a
    baseline tree runs with the same file)."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "engines.yaml").write_text(
        f"ai:\n  provider: ollama\n  model: fake-model\n"
        f"  providers:\n    ollama: {{host: '{url}', max_retries: 0}}\n" + QUIET,
        encoding="utf-8",
    )


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


async def seed_history(home: Path, pairs: int) -> None:
    """A session with `pairs` earlier question/answer pairs (Markdown answers)."""
    from cozy.runtime import Runtime
    from cozy.settings import Settings
    from cozy.storage.store import NewMessage

    settings = Settings(home=home)
    rt = await Runtime.open(settings)
    try:
        session = await rt.store.create_session(
            settings.user, settings.personality, title="a long session"
        )
        for i in range(pairs):
            answer = make_answer(150).replace("word", f"turn{i}w")
            await rt.store.add_messages(
                session.id,
                [NewMessage("user", f"question {i}"), NewMessage("assistant", answer)],
            )
    finally:
        await rt.close()


async def app_ready(app: Any) -> None:
    try:
        await asyncio.wait_for(app.ready.wait(), 60)
    except TimeoutError:
        raise RuntimeError(f"the app did not start: {app.startup_error}") from None


async def startup(home: Path) -> tuple[float, float]:
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
        await app_ready(app)
        await app.workers.wait_for_complete()
        await pilot.pause()
        ready = (time.perf_counter() - started) * 1000
    return interactive, ready


async def one_run(args: argparse.Namespace) -> dict[str, Any]:
    """One measurement in this process (the child of `main`); returns its figures."""
    from cozy.settings import Settings
    from cozy.tui.app import CozyApp
    from cozy.tui.widgets.messages import ChatLog
    from cozy.tui.widgets.prompt import PromptArea

    home = Path(tempfile.mkdtemp(prefix="cozy-bench-tui-"))
    write_config(home, args.url)
    if args.history:
        await seed_history(home, args.history)
    starts = [await startup(home) for _ in range(args.starts)]
    prompt_text = make_answer(args.tokens)  # the fake answers "You said: <prompt>"
    gcp = GcPauses()
    try:
        session = "last" if args.history else None
        app = CozyApp(Settings(home=home), session=session, check_model=False)
        async with app.run_test(size=(120, 40)) as pilot:
            await app_ready(app)
            await app.workers.wait_for_complete()
            prompt = app.query_one(PromptArea)
            idle_lat, idle_drop, _ = await type_keys(pilot, prompt, args.keys, args.rate)
            prompt.load_text(prompt_text)
            t_enter = time.perf_counter()
            await pilot.press("enter")
            chat = app.query_one(ChatLog)
            while chat.last_answer() is None or not app.busy:  # noqa: ASYNC110 - UI state
                await asyncio.sleep(0.005)
            turn = asyncio.create_task(watch_turn(app, t_enter))
            gcp.on = True
            typed = await type_keys(pilot, prompt, args.keys, args.rate)
            busy_lat, busy_drop, streaming = typed
            gcp.on = False
            stream_s = await turn
            await app.workers.wait_for_complete()
            answer_view = chat.last_answer()
            got = answer_view.text if answer_view else ""
            widgets = len(list(app.screen.walk_children()))
    finally:
        gcp.close()
    return {
        "idle": idle_lat,
        "busy": [ms for ms, on in zip(busy_lat, streaming, strict=True) if on],
        "after": [ms for ms, on in zip(busy_lat, streaming, strict=True) if not on],
        "dropped": [idle_drop, busy_drop],
        "stream_s": stream_s,
        "complete": got == f"You said: {prompt_text}",
        "chars": len(got),
        "gc": [len(gcp.pauses), gcp.full, max(gcp.pauses, default=0.0)],
        "starts": starts,
        "widgets": widgets,
    }


def export_tree(rev: str) -> Path:
    """`cozy/` (and the shipped engines.yaml and profiles/ it reads from beside it) as
    of git revision `rev`, in a temporary directory (read-only git use)."""
    out = Path(tempfile.mkdtemp(prefix="cozy-bench-base-"))
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", rev, "cozy", "engines.yaml", "profiles"],
        check=True,
        capture_output=True,
    ).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out


def child(args: argparse.Namespace, url: str, tree: Path | None) -> dict[str, Any]:
    import json
    import os

    env = dict(os.environ)
    if tree is not None:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(tree), env.get("PYTHONPATH")]))
    cmd = [sys.executable, __file__, "--child", "--url", url]
    for name in ("tokens", "keys", "rate", "starts", "history"):
        cmd += [f"--{name}", str(getattr(args, name))]
    out = subprocess.run(
        cmd, env=env, check=True, capture_output=True, text=True, timeout=900
    ).stdout
    result: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
    return result


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


async def main(args: argparse.Namespace) -> None:
    # the fake model runs in its own process, as a real model server would (in-process,
    # its thread would fight the app for the GIL and pace tokens late)
    port = free_port()
    fake = subprocess.Popen(  # noqa: ASYNC220 - started once, before anything is timed
        [sys.executable, "-m", "cozy.testing", "--port", str(port), "--tps", str(args.tps)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    variants: list[tuple[str, Path | None]] = [("new", None)]
    if args.baseline:
        variants.insert(0, (f"base {args.baseline}", export_tree(args.baseline)))
    results: dict[str, list[dict[str, Any]]] = {name: [] for name, _ in variants}
    print(
        f"cozy chat bench: {args.tokens} tokens at {args.tps:g} tok/s, typing {args.keys} "
        f"keys at {args.rate:g} keys/s, history {args.history} pairs, {args.runs} run(s)\n"
    )
    head = f"{'run':>3} {'variant':14}{'load before':>16}{'idle p99':>9}"
    print(
        head + f"{'keys':>5}{'p50':>6}{'p99':>7}{'max':>7}{'drop':>5}{'GCs':>5}{'full':>5}"
        f"{'widgets':>8}"
    )
    try:
        await wait_port(port)
        for run in range(args.runs):
            for name, tree in variants if run % 2 == 0 else variants[::-1]:
                before = load()
                r = await asyncio.to_thread(child, args, url, tree)
                results[name].append(r)
                busy = r["busy"]
                print(
                    f"{run + 1:>3} {name:14}{before:>16}{pct(r['idle'], 0.99):>9.1f}"
                    f"{len(busy):>5}{pct(busy, 0.5):>6.1f}{pct(busy, 0.99):>7.1f}"
                    f"{max(busy, default=0):>7.1f}{r['dropped'][1]:>5}{r['gc'][0]:>5}"
                    f"{r['gc'][1]:>5}{r['widgets']:>8}" + ("" if r["complete"] else "  (!)"),
                    flush=True,
                )
        home = Path(tempfile.mkdtemp(prefix="cozy-bench-tui-"))
        write_config(home, url)
        bare_s = await bare_stream(home, make_answer(args.tokens))
    finally:
        fake.terminate()
        fake.wait(5)
    print(f"\nload average after: {load()}")
    print(
        "keys/p50/p99/max: key-to-screen ms of the keys typed while the answer streamed "
        "(the rest, typed after it, are left out); drop: keys lost; GCs/full: collector "
        "passes while typing, full ones; widgets: mounted at the end; (!) the answer was "
        "incomplete"
    )
    for name, rs in results.items():
        p99s = [pct(r["busy"], 0.99) for r in rs]
        p50s = [pct(r["busy"], 0.5) for r in rs]
        inter = [s[0] for r in rs for s in r["starts"]]
        ready = [s[1] for r in rs for s in r["starts"]]
        stream = statistics.median(r["stream_s"] for r in rs)
        print(
            f"{name}: key-to-screen while streaming median p50 {statistics.median(p50s):.1f}"
            f" ms, median p99 {statistics.median(p99s):.1f} ms (target <= 50)\n"
            f"  dropped keys {sum(r['dropped'][1] for r in rs)} (target 0); full GCs while "
            f"typing {sum(r['gc'][1] for r in rs)}; stream {stream:.1f} s from enter to done "
            f"(orchestrator alone {bare_s:.1f} s)\n"
            f"  start-up to an interactive prompt median {statistics.median(inter):.0f} ms "
            f"(max {max(inter):.0f}; target <= 1000); to sessions listed "
            f"{statistics.median(ready):.0f} ms"
        )
    print("(start-up is in-process, after imports: see `python -X importtime -m cozy.tui.app`)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", help="also run this git revision's app, alternating")
    parser.add_argument("--history", type=int, default=0, help="earlier Q/A pairs in the session")
    parser.add_argument("--tokens", type=int, default=2000)
    parser.add_argument("--tps", type=float, default=200)
    parser.add_argument("--keys", type=int, default=300)
    parser.add_argument("--rate", type=float, default=30, help="keys per second")
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.child:
        import json

        print(json.dumps(asyncio.run(one_run(ns))))
    else:
        asyncio.run(main(ns))
