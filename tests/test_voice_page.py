"""The `/voice` browser page against the real app on uvicorn.

Headless Chromium (Debian's `chromium`) loads the page with a fake microphone that plays
espeak-ng speech from a WAV file; hands-free mode streams it over `WS /v1/realtime` (the
key goes as the `openai-insecure-api-key.` subprotocol) and the answer text must appear
in the page. Only the model is fake; pocketsphinx, espeak-ng, the VAD, SQLite, uvicorn
and the browser are real. Also: the page is public, the browser key paths of the
realtime auth (subprotocol, `?key=`) work and a bad key is refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets
from helpers import write_engines
from realtime_helpers import VOICE_YAML, served_fixture, stored_messages
from server_fixtures import Served, make_keys, start_server
from voice_support import concat, espeak, needs_espeak, silence

from cozy.settings import Settings
from cozy.testing import FakeModelServer

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")

FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--remote-debugging-port=0",
]


class CdpError(RuntimeError):
    pass


class Page:
    """One page target: `call` a CDP method, `evaluate` an expression, `wait_for` a value."""

    def __init__(self, socket: Any) -> None:
        self.socket = socket
        self.ids = itertools.count(1)
        self.console: list[str] = []

    async def call(self, method: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        ident = next(self.ids)
        await self.socket.send(json.dumps({"id": ident, "method": method, "params": params or {}}))
        while True:
            message = json.loads(await self.socket.recv())
            if message.get("id") == ident:
                if "error" in message:
                    raise CdpError(f"{method}: {message['error']}")
                result: dict[str, Any] = message.get("result", {})
                return result
            if message.get("method") == "Runtime.consoleAPICalled":
                args = message["params"].get("args", [])
                self.console.append(
                    " ".join(str(a.get("value", a.get("description"))) for a in args)
                )
            elif message.get("method") == "Runtime.exceptionThrown":
                details = message["params"]["exceptionDetails"]
                self.console.append(f"exception: {details.get('exception', details)}")

    async def evaluate(self, expression: str, *, gesture: bool = False) -> Any:
        result = await self.call(
            "Runtime.evaluate",
            {
                "expression": expression,
                "returnByValue": True,
                "awaitPromise": True,
                "userGesture": gesture,
            },
        )
        if "exceptionDetails" in result:
            raise CdpError(f"{expression!r} threw: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, expression: str, seconds: float = 30.0) -> Any:
        """Poll until `expression` is truthy; its value. On timeout: what the page shows."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            value = await self.evaluate(expression)
            if value:
                return value
            await asyncio.sleep(0.1)
        shown = await self.evaluate("document.body.innerText")
        raise TimeoutError(f"{expression!r} not true after {seconds:g} s; page shows:\n{shown}")


@contextlib.asynccontextmanager
async def chromium(
    url: str, fake_audio: Path | None = None, *, loop: bool = False
) -> AsyncIterator[Page]:
    """Headless Chromium showing `url` (fresh profile), the fake microphone playing
    `fake_audio` once from when the page opens it (or over and over); yields its page."""
    import websockets

    if CHROMIUM is None:
        raise RuntimeError("chromium is not installed (apt-get install -y chromium)")
    with tempfile.TemporaryDirectory(prefix="cozy-chromium-") as tmp:
        profile, log = Path(tmp) / "profile", Path(tmp) / "chromium.log"
        flags = [*FLAGS, f"--user-data-dir={profile}"]
        if fake_audio is not None:
            once = "" if loop else "%noloop"
            flags.append(f"--use-file-for-fake-audio-capture={fake_audio}{once}")
        proc = launch([CHROMIUM, *flags, url], log)
        try:
            port = await _devtools_port(profile, proc, log)
            async with httpx.AsyncClient() as http:
                targets = (await http.get(f"http://127.0.0.1:{port}/json/list")).json()
            target = next(t for t in targets if t.get("type") == "page")
            async with websockets.connect(target["webSocketDebuggerUrl"], max_size=None) as ws:
                page = Page(ws)
                await page.call("Runtime.enable")
                yield page
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)


def launch(
    argv: list[str], log: Path, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(
            argv,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            start_new_session=True,  # its helpers die with it (we signal our own group)
        )


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-2000:]


async def _devtools_port(profile: Path, proc: subprocess.Popen[bytes], log: Path) -> int:
    marker = profile / "DevToolsActivePort"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {proc.returncode}:\n{tail(log)}")
        if marker.exists():
            first = marker.read_text().splitlines()[:1]
            if first and first[0].strip().isdigit():
                return int(first[0])
        await asyncio.sleep(0.05)
    raise RuntimeError("chromium did not open its DevTools port within 30 s")


pytestmark = [needs_espeak, pytest.mark.timeout(120)]
__all__ = ["served_fixture"]

needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)"
)


def ws_url(served: Served, query: str = "") -> str:
    return served.url.replace("http://", "ws://") + "/v1/realtime" + query


# the lead covers the page opening the microphone (the file starts) before it sends audio
def speech_wav(tmp_path: Path, text: str, lead: float = 2.0, tail: float = 4.0) -> Path:
    rate = 48_000
    clip = concat(silence(lead, rate), espeak(text).at(rate), silence(tail, rate))
    path = tmp_path / "speech.wav"
    path.write_bytes(clip.wav())
    return path


async def space(page: Page, down: bool) -> None:
    await page.call(
        "Input.dispatchKeyEvent",
        {
            "type": "keyDown" if down else "keyUp",
            "key": " ",
            "code": "Space",
            "windowsVirtualKeyCode": 32,
            **({"text": " "} if down else {}),
        },
    )


async def test_the_page_is_public_html(served: Served) -> None:
    async with httpx.AsyncClient() as http:
        r = await http.get(served.url + "/voice")
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/html")
        assert r.headers["referrer-policy"] == "no-referrer"
        assert 'id="handsfree"' in r.text and 'id="talk"' in r.text
        assert "openai-insecure-api-key." in r.text
        # the API it calls is not public
        assert (await http.get(served.base_url + "/models")).status_code == 401


async def test_key_as_subprotocol_or_query_and_bad_keys(served: Served) -> None:
    key = served.keys["alice"]
    protocols = ["realtime", f"openai-insecure-api-key.{key}"]
    async with websockets.connect(ws_url(served), subprotocols=protocols) as ws:  # type: ignore[arg-type]
        assert ws.subprotocol == "realtime"  # the browser needs one of its offers back
        assert json.loads(await ws.recv())["type"] == "session.created"
    async with websockets.connect(ws_url(served, f"?model=cozy&key={key}")) as ws:
        assert json.loads(await ws.recv())["type"] == "session.created"
    for url, protos in (
        (ws_url(served), ["realtime", "openai-insecure-api-key.sk-cozy-wrong"]),
        (ws_url(served, "?key=sk-cozy-wrong"), None),
        (ws_url(served), ["realtime"]),
    ):
        with pytest.raises(websockets.InvalidStatus) as err:
            async with websockets.connect(url, subprotocols=protos):  # type: ignore[arg-type]
                pass
        assert err.value.response.status_code == 401
        body = json.loads(err.value.response.body or b"{}")
        assert "cozy keys create" in json.dumps(body["error"]), body


@needs_chromium
async def test_hands_free_turn_in_headless_chromium(served: Served, tmp_path: Path) -> None:
    served.fake.queue_reply("It is noon.")
    wav = speech_wav(tmp_path, "what time is it")
    url = f"{served.url}/voice?key={served.keys['alice']}"
    async with chromium(url, wav) as page:
        await page.wait_for("location.pathname === '/voice' && document.readyState === 'complete'")
        # the key moved from the address bar into localStorage
        assert await page.evaluate("localStorage.getItem('cozy.key')") == served.keys["alice"]
        assert "key=" not in await page.evaluate("location.href")
        await page.evaluate("document.getElementById('handsfree').click()", gesture=True)
        heard = await page.wait_for("document.querySelector('.user .text')?.textContent", 40)
        answer = await page.wait_for(
            "(() => { const a = document.querySelector('.assistant');"
            " return a && a.dataset.status ? a.querySelector('.text').textContent : ''; })()",
            40,
        )
        pressed = await page.evaluate(
            "document.getElementById('handsfree').getAttribute('aria-pressed')"
        )
        errors = await page.evaluate("document.getElementById('status').className")
    assert heard == "what time is it"
    assert answer == "It is noon."
    assert pressed == "true" and "error" not in errors
    assert served.fake.turn_requests()[-1]["messages"][-1]["content"] == "what time is it"


@needs_chromium
async def test_no_key_needed_with_no_auth(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    fake_model.queue_reply("It is noon.")
    thread, served = await asyncio.to_thread(
        start_server, cozy_home, fake_model, VOICE_YAML, no_auth=True
    )
    try:
        async with chromium(f"{served.url}/voice", speech_wav(tmp_path, "what time is it")) as page:
            await page.wait_for(
                "location.pathname === '/voice' && document.readyState === 'complete'"
            )
            await page.evaluate("document.getElementById('handsfree').click()", gesture=True)
            answer = await page.wait_for(
                "document.querySelector('.assistant')?.dataset.status"
                " && document.querySelector('.assistant .text').textContent",
                40,
            )
    finally:
        thread.stop()
    assert answer == "It is noon."
    assert fake_model.turn_requests()[-1]["messages"][-1]["content"] == "what time is it"


@needs_chromium
async def test_push_to_talk_then_interrupt_in_headless_chromium(
    served: Served, tmp_path: Path
) -> None:
    served.fake.tokens_per_second = 10
    served.fake.queue_reply(" ".join(f"Sentence number {i} is here." for i in range(40)))
    wav = speech_wav(tmp_path, "turn on the kitchen lights", lead=2.0, tail=0.5)
    seconds = len(wav.read_bytes()) / (48_000 * 2)
    url = f"{served.url}/voice?key={served.keys['alice']}"
    async with chromium(url, wav) as page:
        await page.wait_for("location.pathname === '/voice' && document.readyState === 'complete'")
        await space(page, down=True)  # hold the space bar while the fake microphone speaks
        await page.wait_for("document.body.dataset.mode === 'ptt'")
        await asyncio.sleep(seconds + 1.0)  # the whole file (it began before `ptt` showed)
        assert await page.evaluate("document.getElementById('talk').classList.contains('held')")
        await space(page, down=False)
        heard = await page.wait_for("document.querySelector('.user .text')?.textContent", 40)
        first = await page.wait_for("document.querySelector('.assistant .text')?.textContent", 40)
        await page.evaluate("document.getElementById('interrupt').click()", gesture=True)
        status = await page.wait_for("document.querySelector('.assistant')?.dataset.status", 20)
        said = await page.evaluate("document.querySelector('.assistant .text').textContent")
        marked = await page.evaluate(
            "document.querySelector('.assistant').classList.contains('interrupted')"
        )
    assert heard == "turn on the kitchen lights"
    assert first and "Sentence number 0 is here.".startswith(first.strip())
    assert said.startswith(first)
    assert status == "cancelled" and marked
    assert "Sentence number 39" not in said
    assert served.fake.turn_requests()[-1]["messages"][-1]["content"] == heard
    rows = stored_messages(served)
    assistant = [m for m in rows if m.role == "assistant"]
    assert assistant and assistant[-1].status == "interrupted"
    assert assistant[-1].content.startswith("Sentence")


@needs_chromium
async def test_missing_or_wrong_key_is_explained_in_the_page(served: Served) -> None:
    status = "document.getElementById('status')"
    async with chromium(f"{served.url}/voice") as page:
        await page.wait_for("location.pathname === '/voice' && document.readyState === 'complete'")
        await page.evaluate("document.getElementById('handsfree').click()", gesture=True)
        missing = await page.wait_for(
            f"{status}.classList.contains('error') && {status}.textContent"
        )
        await page.evaluate(
            "const k = document.getElementById('key'); k.value = 'sk-cozy-wrong';"
            " k.dispatchEvent(new Event('change'));"
            " document.getElementById('handsfree').click()",
            gesture=True,
        )
        wrong = await page.wait_for(f"{status}.textContent.includes('Check the API key')", 20)
        stored = await page.evaluate("localStorage.getItem('cozy.key')")
        mode = await page.evaluate("document.body.dataset.mode")
    assert "needs an API key" in missing and "cozy keys create" in missing
    assert wrong and stored == "sk-cozy-wrong" and not mode
    assert not served.fake.chat_requests()


WEBRTC_COZY = Path(__file__).resolve().parent.parent / ".venv-webrtc" / "bin" / "cozy"


@contextlib.asynccontextmanager
async def cozy_serve_webrtc(home: Path, fake: FakeModelServer) -> AsyncIterator[tuple[str, str]]:
    """A real `cozy serve --webrtc` from `.venv-webrtc` (fastrtc lives there): (url, key)."""
    import socket

    config = write_engines(home, fake.url, VOICE_YAML)
    keys = await asyncio.to_thread(make_keys, Settings(home=home, config=config))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, "COZY_HOME": str(home), "COZY_CONFIG": str(config)}
    log = home / "serve.log"
    proc = launch([str(WEBRTC_COZY), "serve", "--webrtc", "--port", str(port)], log, env)
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient() as http:
            for _ in range(300):
                if proc.poll() is not None:
                    raise RuntimeError(f"cozy serve --webrtc exited:\n{tail(log)}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(url + "/health")).status_code == 200:
                        break
                await asyncio.sleep(0.1)
            else:
                raise RuntimeError(f"cozy serve --webrtc did not start:\n{tail(log)}")
        yield url, keys["alice"]
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@needs_chromium
@pytest.mark.skipif(
    not WEBRTC_COZY.exists(), reason="no .venv-webrtc: build it with `./install.sh --dev`"
)
async def test_webrtc_mode_in_headless_chromium(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    fake_model.queue_reply("It is twelve o'clock.")
    # the first offer builds FastRTC's stream (seconds): the microphone repeats the question
    wav = speech_wav(tmp_path, "what time is it", lead=1.0, tail=5.0)
    async with contextlib.AsyncExitStack() as stack:
        url, key = await stack.enter_async_context(cozy_serve_webrtc(cozy_home, fake_model))
        page = await stack.enter_async_context(chromium(f"{url}/voice?key={key}", wav, loop=True))
        await page.wait_for("location.pathname === '/voice' && document.readyState === 'complete'")
        await page.evaluate("document.getElementById('webrtc').click()", gesture=True)
        await page.wait_for("document.body.dataset.mode === 'webrtc'", 20)
        # the looped microphone may be cut mid-question at first (the grammar then hears
        # its nearest command, e.g. "pause"): wait for a full repetition to reach the model
        for _ in range(600):  # up to ~60 s: a repetition comes every ~8 s
            asked = [r["messages"][-1]["content"] for r in fake_model.turn_requests()]
            if "what time is it" in asked:
                break
            await asyncio.sleep(0.1)
        heard = await page.wait_for(
            "Number(document.getElementById('rtc-heard').dataset.seconds) >= 0.5"
            " && document.getElementById('rtc-heard').dataset.seconds",
            40,
        )
        errors = await page.evaluate("document.getElementById('status').className")
    assert "what time is it" in asked, asked
    assert float(heard) >= 0.5
    assert "error" not in errors
