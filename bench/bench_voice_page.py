"""The `/voice` page in headless Chromium: end of speech → the answer in the page.

Each run starts a real app on uvicorn (voice engine: pocketsphinx, espeak-ng, the VAD),
opens `/voice` in Debian's headless Chromium with a fake microphone playing espeak-ng
speech, clicks hands-free and reads the page's own timings (`window.cozyVoiceTimings`,
browser clock) from the moment the server's `speech_stopped` reaches the page. Only the
model is fake (instant), so the figures are cozy's own pipeline plus the browser.

    .venv/bin/python bench/bench_voice_page.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from realtime_helpers import VOICE_YAML
from server_fixtures import start_server
from test_voice_page import CHROMIUM, chromium, speech_wav

from cozy.testing import FakeModelServer

READY = "location.pathname === '/voice' && document.readyState === 'complete'"
COLUMNS = (
    ("response.created", "response.created"),
    ("response.output_audio_transcript.delta", "first answer text"),
    ("response.output_audio.delta", "first answer audio"),
    ("response.done", "response.done"),
)


async def one_run(fake: FakeModelServer) -> list[float]:
    home = Path(tempfile.mkdtemp(prefix="cozy-bench-voice-"))
    os.environ["COZY_HOME"] = str(home)
    fake.queue_reply("It is noon. The sun is high.")
    thread, served = await asyncio.to_thread(start_server, home, fake, VOICE_YAML)
    try:
        url = f"{served.url}/voice?key={served.keys['alice']}"
        async with chromium(url, speech_wav(home, "what time is it")) as page:
            await page.wait_for(READY)
            await page.evaluate("document.getElementById('handsfree').click()", gesture=True)
            await page.wait_for("window.cozyVoiceTimings.some(t => t[0] === 'response.done')", 40)
            timings: list[list[Any]] = await page.evaluate("window.cozyVoiceTimings")
    finally:
        await asyncio.to_thread(thread.stop)

    def first(kind: str) -> float:
        return float(next(t[1] for t in timings if t[0] == kind))

    stopped = first("input_audio_buffer.speech_stopped")
    return [first(kind) - stopped for kind, _ in COLUMNS]


async def main(runs: int) -> None:
    rows = []
    with FakeModelServer() as fake:
        for _ in range(runs):
            rows.append(await one_run(fake))
    head = " | ".join(f"speech_stopped → {label} (ms)" for _, label in COLUMNS)
    print(f"| run | {head} |")
    print("|---" * (len(COLUMNS) + 1) + "|")
    for i, row in enumerate(rows, 1):
        print(f"| {i} | " + " | ".join(f"{v:.0f}" for v in row) + " |")
    medians = [statistics.median(col) for col in zip(*rows, strict=True)]
    print("| median | " + " | ".join(f"{v:.0f}" for v in medians) + " |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    if CHROMIUM is None:
        raise SystemExit("chromium is not installed: apt-get install -y chromium")
    asyncio.run(main(args.runs))
