"""The real-model lane: the bundled SmolLM2-135M run in process by llama.cpp.

Answers are real (nondeterministic in general), so the tests ask short questions at
temperature 0 with small `max_tokens`, use grammars where structure matters, and assert
on properties. The model is loaded once per process (the provider's one worker keeps it
warm); a test that needs another window reloads it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from helpers import collect, opened, req

from cozy.core.errors import ContextTooLarge, ModelFileError
from cozy.core.events import Done, Started, TextDelta, ToolCallRequested, ToolResult
from cozy.core.types import GenerationOptions, Message, StreamChunk, ToolSpec
from cozy.engines.ai import llama_runner, local_models
from cozy.engines.ai.local_provider import LocalProvider
from cozy.engines.memory.extract import SCHEMA as MEMORY_SCHEMA
from cozy.engines.memory.extract import extract
from cozy.runtime import Runtime
from cozy.settings import Settings

try:
    import llama_cpp  # noqa: F401
except ImportError:  # CI installs it (install.sh builds it): missing there is a failure
    if os.environ.get("CI"):
        raise
    pytest.skip(
        "llama-cpp-python is not installed (./install.sh builds it)", allow_module_level=True
    )

GREEDY = GenerationOptions(temperature=0.0, seed=1, max_tokens=24)
COZY = [sys.executable, "-m", "cozy"]


@pytest.fixture(scope="module")
def provider() -> LocalProvider:
    return LocalProvider({})


async def stream(
    p: LocalProvider,
    prompt: str,
    *,
    model: str = "",
    tools: list[ToolSpec] | None = None,
    options: GenerationOptions = GREEDY,
) -> tuple[str, StreamChunk]:
    text, last = [], StreamChunk()
    async for chunk in p.chat_stream(
        [Message("user", prompt)], model=model, tools=tools, options=options
    ):
        text.append(chunk.delta)
        if chunk.finish_reason:
            last = chunk
    return "".join(text), last


async def test_answers_with_text_and_usage(provider: LocalProvider) -> None:
    text, last = await stream(provider, "Say hello in one short sentence.")
    assert text.strip()
    assert last.finish_reason in ("stop", "length") and last.usage is not None
    assert last.usage.prompt_tokens > 5 and 0 < last.usage.completion_tokens <= 24


async def test_two_plus_two(provider: LocalProvider) -> None:
    text, _ = await stream(provider, "What is 2+2?")
    assert "4" in text


async def test_stop_max_tokens_seed_and_temperature(provider: LocalProvider) -> None:
    count = "Count from 1 to 20, separated by commas."
    seeded = GenerationOptions(temperature=0.0, seed=3, max_tokens=60)
    full, last = await stream(provider, count, options=seeded)
    assert "\n" in full.strip() and last.usage  # lines: what the stop sequence cuts at
    again, _ = await stream(provider, count, options=seeded)
    assert again == full  # temperature 0 and a seed: the same answer
    cut = GenerationOptions(temperature=0.0, seed=3, max_tokens=60, stop=["\n"])
    text, cut_last = await stream(provider, count, options=cut)
    assert text.strip() and "\n" not in text and full.startswith(text)
    assert cut_last.finish_reason == "stop" and cut_last.usage
    assert cut_last.usage.completion_tokens < last.usage.completion_tokens
    short = GenerationOptions(temperature=0.0, max_tokens=3)
    _, short_last = await stream(provider, count, options=short)
    assert short_last.finish_reason == "length" and short_last.usage
    assert short_last.usage.completion_tokens == 3
    hot = GenerationOptions(temperature=1.0, seed=7, max_tokens=40)
    one, _ = await stream(provider, "Tell me a story.", options=hot)
    await stream(provider, "Say hi.", options=short)  # something else in between
    two, _ = await stream(provider, "Tell me a story.", options=hot)
    assert one == two and one.strip()  # sampled, and the seed makes it repeatable


async def test_json_schema_answer_is_valid(provider: LocalProvider) -> None:
    schema = {
        "type": "object",
        "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"],
    }
    options = GenerationOptions(
        temperature=0.0,
        max_tokens=60,
        response_format={"type": "json_schema", "json_schema": {"name": "c", "schema": schema}},
    )
    result = await provider.chat(
        [Message("user", "Name a big city and its population as JSON.")], model="", options=options
    )
    jsonschema.validate(json.loads(result.content), schema)
    loose = GenerationOptions(
        temperature=0.0, max_tokens=40, response_format={"type": "json_object"}
    )
    text, _ = await stream(provider, "Give me a JSON object about a cat.", options=loose)
    assert isinstance(json.loads(text), dict)


async def test_memory_extraction_gives_valid_json(provider: LocalProvider) -> None:
    convo = [
        Message("user", "My sister is called Ana and I live in Lisbon."),
        Message("assistant", "Nice!"),
    ]
    result = await extract(provider, "", convo, [], attempts=1, max_tokens=300)
    jsonschema.validate(result.model_dump(exclude_none=True), MEMORY_SCHEMA)


async def test_forced_tool_call_matches_the_schema(provider: LocalProvider) -> None:
    spec = ToolSpec(
        "weather.get",
        "Weather for a city.",
        {
            "type": "object",
            "properties": {"city": {"type": "string"}, "days": {"type": "integer"}},
            "required": ["city", "days"],
        },
    )
    options = GenerationOptions(temperature=0.0, max_tokens=40, tool_choice="required")
    _, last = await stream(provider, "Weather in Paris?", tools=[spec], options=options)
    assert last.finish_reason == "tool_calls" and last.tool_calls
    call = last.tool_calls[0]
    assert call.name == "weather.get"  # the wire name mapped back
    jsonschema.validate(json.loads(call.arguments), spec.parameters)


async def test_interrupted_within_a_token(provider: LocalProvider) -> None:
    options = GenerationOptions(temperature=0.0, max_tokens=400)
    gen = provider.chat_stream(
        [Message("user", "Write a very long story about a dragon.")], model="", options=options
    )
    deltas = 0
    async for chunk in gen:
        deltas += bool(chunk.delta)
        if deltas == 3:
            break
    await gen.aclose()  # as a cancelled consumer does
    job = llama_runner.worker().last_job
    assert job is not None and job.stop.is_set()
    await asyncio.wait_for(asyncio.to_thread(job.finished.wait), 30)
    assert job.tokens_after_stop <= 1
    assert job.made < 20  # stopped long before the 400-token limit


async def test_window_read_from_the_gguf(provider: LocalProvider) -> None:
    assert await provider.context_window("") == 8192
    models = await provider.list_models()
    bundled = next(m for m in models if m.id == "smollm2-135m")
    assert bundled.context_window == 8192
    assert bundled.details["size"] == local_models.BUNDLED_SIZE


# -- through the runtime and orchestrator ------------------------------------------------
def engines(home: Path, extra: str = "") -> None:
    (home / "engines.yaml").write_text(
        "ai:\n  provider: local\n" + extra + "memory: {provider: none}\nprofile: {provider: none}\n"
        "knowledge: {provider: none}\n",
        encoding="utf-8",
    )


async def test_orchestrator_turn_window_and_tool_round_trip(cozy_home: Path) -> None:
    engines(cozy_home)
    async with opened(Settings(home=cozy_home)) as rt:
        events = await collect(rt.orchestrator.run(req("What is 2+2?", options=GREEDY)))
        done = events[-1]
        assert isinstance(done, Done) and done.status == "complete", events
        assert done.model == "local:smollm2-135m" and "4" in done.text
        assert done.tokens["window"] == 8192 and done.tokens["window_source"] == "provider"
        started = events[0]
        assert isinstance(started, Started) and "engines.yaml" in started.provider_reason
        # a grammar-forced call of a built-in tool, its result, then the answer in text
        options = GenerationOptions(temperature=0.0, max_tokens=40, tool_choice="required")
        events = await collect(rt.orchestrator.run(req("What time is it?", options=options)))
        calls = [e for e in events if isinstance(e, ToolCallRequested)]
        results = [e for e in events if isinstance(e, ToolResult)]
        assert calls and calls[0].call.name == "builtin.now"
        assert results and not results[0].is_error
        done = events[-1]
        assert isinstance(done, Done) and done.status == "complete"
        rows = await rt.store.list_messages(done.session_id)
        assert [r.role for r in rows] == ["user", "assistant", "tool", "assistant"]


async def test_cancelled_turn_is_saved_as_interrupted(cozy_home: Path) -> None:
    engines(cozy_home)
    async with opened(Settings(home=cozy_home)) as rt:
        got: list[str] = []
        three = asyncio.Event()

        async def consume() -> None:
            options = GenerationOptions(temperature=0.0, max_tokens=400)
            async for event in rt.orchestrator.run(req("Tell me a long story.", options=options)):
                if isinstance(event, TextDelta):
                    got.append(event.text)
                    if len(got) == 3:
                        three.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(three.wait(), 120)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        session = await rt.store.last_session("local")
        assert session is not None
        rows = await rt.store.list_messages(session.id)
        assert rows[-1].role == "assistant" and rows[-1].status == "interrupted"
        assert rows[-1].content.startswith("".join(got[:3]))


async def test_prompt_longer_than_the_window_names_the_real_window(cozy_home: Path) -> None:
    engines(cozy_home, "  providers:\n    local: {n_ctx: 256}\n")
    rt = await Runtime.open(Settings(home=cozy_home))
    try:
        events = await collect(rt.orchestrator.run(req("tell me about this: " + "word " * 400)))
        failed = events[-1]
        assert failed.type == "error"
        message = failed.error["message"]  # type: ignore[attr-defined]
        assert "window 256 from provider" in message and "shorten the prompt" in message
    finally:
        await rt.close()
    # the provider itself refuses what its window cannot hold, with the real window
    small = LocalProvider({"n_ctx": 128})
    with pytest.raises(ContextTooLarge, match="window is 128"):
        await stream(small, "word " * 300)


async def test_unsupported_architecture_is_named(tmp_path: Path) -> None:
    src = local_models.bundled().path
    odd = tmp_path / "odd.gguf"
    shutil.copyfile(src, odd)
    data = bytearray(odd.read_bytes()[:4096])
    key = b"general.architecture"
    at = data.index(key) + len(key) + 4 + 8  # type u32, length u64, then "llama"
    assert data[at : at + 5] == b"llama"
    with odd.open("r+b") as fh:
        fh.seek(at)
        fh.write(b"llamz")
    p = LocalProvider({})
    with pytest.raises(ModelFileError) as err:
        await stream(p, "hi", model=str(odd))
    assert "'llamz'" in str(err.value) and "does not support" in str(err.value)


def test_llama_cpp_missing_names_the_fix(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['llama_cpp'] = None\n"
        "from cozy.engines.ai import llama_load\n"
        "try:\n    llama_load.import_llama()\n"
        "except Exception as e:\n    print(type(e).__name__, e)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert "EngineError" in out.stdout and "./install.sh" in out.stdout and "ollama" in out.stdout


# -- the CLI with nothing configured --------------------------------------------------------
def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "COZY_"))}
    env.update(COZY_HOME=str(home), OLLAMA_HOST="http://127.0.0.1:9", COZY_BACKGROUND_JOBS="0")
    return subprocess.run(
        [sys.executable, "-m", "cozy", *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_cli_answers_with_the_embedded_model(tmp_path: Path) -> None:
    home = tmp_path / "home"
    r = cli(home, "run", "--json", "--no-context", "What is 2+2?")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == "local:smollm2-135m" and out["text"].strip()
    assert out["provider"]["name"] == "local" and "no Ollama at" in out["provider"]["reason"]
    assert "bigger GGUF" in out["notice"]  # said once ...
    again = json.loads(cli(home, "run", "--json", "--no-context", "hi").stdout)
    assert again["notice"] is None  # ... and not again
    # any GGUF by path; models lists it with path, size and window
    models = home / "models"
    models.mkdir()
    own = models / "my-model.gguf"
    os.link(local_models.bundled().path, own)
    r = cli(home, "run", "--json", "--no-context", "-m", f"local:{own}", "Say hi.")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["model"] == f"local:{own}" and "asked for by name" in out["provider"]["reason"]
    listed = {m["id"]: m for m in json.loads(cli(home, "models", "--json").stdout)}
    assert listed["local:my-model"]["path"] == str(own)
    assert listed["local:my-model"]["context_window"] == 8192
    bad = models / "broken.gguf"
    bad.write_bytes(b"not a model at all" * 10)
    r = cli(home, "run", "-m", f"local:{bad}", "hi")
    assert r.returncode == 1 and "not a GGUF model file" in r.stderr and "Traceback" not in r.stderr


def test_doctor_reports_the_embedded_model(tmp_path: Path) -> None:
    r = cli(tmp_path / "home", "doctor", "--json")
    checks = {c["name"]: c for c in json.loads(r.stdout)}
    embedded = checks["embedded model"]
    assert embedded["status"] == "ok", embedded
    assert "SHA-256 ok" in embedded["detail"] and "window 8,192" in embedded["detail"]
    assert "loaded in" in embedded["detail"]
    assert checks["model"]["status"] == "ok" and "no Ollama at" in checks["model"]["detail"]


# -- cozy chat with nothing configured -------------------------------------------------------
async def test_chat_answers_with_the_embedded_model(
    cozy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_helpers import QUIET, ready, send, views

    from cozy.tui.app import CozyApp
    from cozy.tui.widgets.messages import ChatLog, Notice
    from cozy.tui.widgets.status import StatusBar

    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # no Ollama, no OpenAI: auto
    (cozy_home / "engines.yaml").write_text(
        "ai:\n  providers:\n    local: {max_tokens: 48}\n" + QUIET, encoding="utf-8"
    )
    app = CozyApp(Settings(home=cozy_home))  # probes the model as `cozy chat` does
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(app)
        await send(pilot, "What is 2+2?")
        assert [(r, s) for r, s, _ in views(app)] == [
            ("user", "complete"),
            ("assistant", "complete"),
        ]
        assert views(app)[1][2].strip()
        status = app.query_one(StatusBar)
        assert status.info.model == "local:smollm2-135m"
        assert "no Ollama at" in status.info.why and "(auto: " in status.render_text()
        notices = [n.text for n in app.query_one(ChatLog).query(Notice)]
        assert any("bigger GGUF" in n for n in notices)


# -- stops as a user makes them: Ctrl-C on `cozy run`, Esc in the TUI ----------------------
def test_ctrl_c_on_cozy_run_keeps_the_partial_answer(tmp_path: Path) -> None:
    import signal
    import time

    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENAI_", "COZY_"))}
    env.update(COZY_HOME=str(home), OLLAMA_HOST="http://127.0.0.1:9", COZY_BACKGROUND_JOBS="0")
    proc = subprocess.Popen(
        [*COZY, "run", "--json", "--stream", "--no-context", "Write a long story about a dragon."],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # a suite started in the background (`cmd &`) hands children SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    assert proc.stdout is not None
    lines: list[dict[str, object]] = []
    deadline = time.monotonic() + 300
    while sum(e["type"] == "delta" for e in lines) < 5 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(json.loads(line))
    proc.send_signal(signal.SIGINT)  # what Ctrl-C in the terminal sends
    out, err = proc.communicate(timeout=60)
    lines += [json.loads(x) for x in out.splitlines()]
    assert proc.returncode == 130, err[-2000:]
    shown = "".join(str(e["text"]) for e in lines if e["type"] == "delta")
    assert shown.strip() and lines[-1]["type"] == "error"
    assert lines[-1]["error"]["code"] == "cancelled"  # type: ignore[index]
    r = cli(home, "sessions", "show", str(lines[0]["session_id"]), "--json")
    last = json.loads(r.stdout)["messages"][-1]
    assert last["role"] == "assistant" and last["status"] == "interrupted"
    assert last["content"].startswith(shown.strip()[:20])


async def test_esc_in_chat_stops_the_embedded_model_within_a_token(
    cozy_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tui_helpers import QUIET, ready, settle, views, wait_for

    from cozy.tui.app import CozyApp
    from cozy.tui.widgets.prompt import PromptArea

    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")
    (cozy_home / "engines.yaml").write_text(
        "ai:\n  providers:\n    local: {max_tokens: 400}\n" + QUIET, encoding="utf-8"
    )
    app = CozyApp(Settings(home=cozy_home))
    async with app.run_test(size=(120, 30)) as pilot:
        await ready(app)
        prompt = app.query_one(PromptArea)
        prompt.load_text("Write a long story about a dragon.")
        prompt.focus()
        await pilot.press("enter")
        await wait_for(lambda: len(views(app)) == 2 and len(views(app)[1][2]) > 20, limit=300)
        await pilot.press("escape")
        await settle(pilot)
        role, status, text = views(app)[1]
        assert (role, status) == ("assistant", "interrupted")
        job = llama_runner.worker().last_job
        assert job is not None and job.stop.is_set()
        await asyncio.wait_for(asyncio.to_thread(job.finished.wait), 30)
        assert job.tokens_after_stop <= 1 and job.made < 400
        rows = await app.runtime.store.list_messages(app.session_id or "")
        assert rows[-1].status == "interrupted" and rows[-1].content.startswith(text.strip()[:20])


def test_cli_schema_with_the_embedded_model(tmp_path: Path) -> None:
    """`--schema` through llama.cpp's grammar: valid JSON for the schema, as asked."""
    home = tmp_path / "home"
    r = cli(
        home, "run", "--json", "--no-context", "--schema", "name, age int, bio: one sentence",
        "-o", "temperature", "0", "-o", "max_tokens", "80", "Invent a person.",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    schema = {
        "type": "object",
        "properties": {
            "name": {"type": "string"},
            "age": {"type": "integer"},
            "bio": {"type": "string"},
        },
        "required": ["name", "age", "bio"],
    }
    jsonschema.validate(json.loads(out["text"]), schema)
    assert out["data"] == json.loads(out["text"]) and out["model"] == "local:smollm2-135m"
    image = tmp_path / "dot.gif"
    image.write_bytes(b"GIF89a" + b"\x01\x00\x01\x00\x00\x00\x00;")
    r = cli(home, "run", "--json", "-a", str(image), "What is this?")
    assert r.returncode == 2 and "reads text only" in json.loads(r.stdout)["error"]["message"]


def test_chat_in_a_real_terminal_answers_with_the_embedded_model(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`cozy chat` with nothing configured, in a pseudo-terminal: the embedded model
    answers, the status bar says which model and why, Esc stops a long answer."""
    from tui_pty import ChatPty

    for var in [v for v in os.environ if v.startswith("OPENAI_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # no Ollama: auto picks local
    term = ChatPty(tmp_path / "home", size=(140, 36))
    try:
        term.ready(model="smollm2-135m")  # the status line names the embedded model
        mark = term.mark()
        term.send(b"What is 2+2?\r")
        term.expect("bigger GGUF", after=mark, timeout=300)  # the first answer's notice
        term.expect(r"local:smollm2-135m", timeout=30)
        term.expect(r"auto:", timeout=30)
        mark = term.mark()
        term.send(b"Write a very long story about a dragon.\r")
        term.read(8)  # some of the story streams
        term.send(b"\x1b")  # Esc
        term.expect("interrupted", after=mark, timeout=60)
    finally:
        assert term.close() == 0
