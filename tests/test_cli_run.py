"""`cozy run` endings and background memory, as a user runs it: a subprocess against the
fake model server (Ctrl-C is a real SIGINT to the process)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import cozy, write_engines

from cozy.testing import FakeModelServer


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    write_engines(cozy_home, fake_model.url)
    return fake_model


def _interrupt(fake: FakeModelServer, *args: str) -> tuple[int, str, str]:
    """Start `cozy run ARGS`, SIGINT it once the answer is streaming, return its output."""
    fake.tokens_per_second = 4  # a slow answer: 12 words take ~3 s
    fake.queue_reply("one two three four five six seven eight nine ten eleven twelve")
    proc = subprocess.Popen(
        [sys.executable, "-m", "cozy", "run", *args, "count for me"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=dict(os.environ),
        # a test run started in the background (`cmd &`) inherits SIGINT ignored: give
        # cozy the default a user's terminal gives it, or Ctrl-C would never reach it
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.monotonic() + 60
    while not fake.turn_requests() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert fake.turn_requests(), "the model was never asked"
    time.sleep(1.0)  # a few words in
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    return proc.returncode, out.decode(), err.decode()


def test_ctrl_c_with_json_prints_the_error_object(configured: FakeModelServer) -> None:
    code, out, err = _interrupt(configured, "--json")
    assert code == 130, err
    body = json.loads(out)
    assert body["error"]["code"] == "cancelled" and body["status"] == "interrupted"
    assert body["session_id"].startswith("ses_")
    assert body["text"].startswith("one") and body["text"] != "one two three four five six"
    shown = cozy("sessions", "show", body["session_id"], "--json")
    messages = json.loads(shown.stdout)["messages"]
    assert messages[-1]["role"] == "assistant" and messages[-1]["status"] == "interrupted"


def test_ctrl_c_with_json_stream_ends_with_an_error_event(configured: FakeModelServer) -> None:
    code, out, err = _interrupt(configured, "--json", "--stream")
    assert code == 130, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert lines[0]["type"] == "started" and any(e["type"] == "delta" for e in lines)
    assert lines[-1]["type"] == "error" and lines[-1]["error"]["code"] == "cancelled"
    assert lines[-1]["session_id"] == lines[0]["session_id"]


def test_json_stream_always_ends_with_done_or_error(configured: FakeModelServer) -> None:
    r = cozy("run", "--json", "--stream", "hi", stdin="")
    assert json.loads(r.stdout.splitlines()[-1])["type"] == "done"
    configured.fail_next(500, times=10)
    r = cozy("run", "--json", "--stream", "hi", stdin="")
    assert r.returncode == 1
    assert json.loads(r.stdout.splitlines()[-1])["type"] == "error"
    r = cozy("run", "--json", "--stream", stdin="   ")  # usage error: still an event
    last = json.loads(r.stdout.splitlines()[-1])
    assert r.returncode == 2 and last["type"] == "error" and "empty" in last["error"]["message"]


def test_stdin_trailing_newline_is_not_sent(configured: FakeModelServer) -> None:
    r = cozy("run", "--json", stdin="hello there\n")
    assert json.loads(r.stdout)["text"] == "You said: hello there"
    assert configured.turn_requests()[-1]["messages"][-1]["content"] == "hello there"


def test_cozy_run_alone_remembers(configured: FakeModelServer, cozy_home: Path) -> None:
    """Someone who only uses `cozy run`: the detached worker extracts the memory."""
    configured.add_rule(
        user_contains="New conversation",
        json={"operations": [{"op": "add", "text": "The user's sister Ana lives in Lisbon"}]},
    )
    env = {"COZY_BACKGROUND_JOBS": "1"}
    r = cozy("run", "--json", "My sister Ana moved to Lisbon last year", stdin="", env=env)
    assert r.returncode == 0, r.stderr
    deadline = time.monotonic() + 90
    listed: list[dict[str, object]] = []
    while time.monotonic() < deadline:
        jobs = json.loads(cozy("jobs", "list", "--json").stdout)
        listed = json.loads(cozy("memory", "list", "--json").stdout)
        if jobs["counts"]["done"] >= 1 and listed:
            break
        time.sleep(0.5)
    assert [m["text"] for m in listed] == ["The user's sister Ana lives in Lisbon"]
    assert not (cozy_home / "jobs-worker.log").read_text().strip()  # nothing went wrong
    # with it off, the jobs wait for `cozy jobs run`
    r = cozy("run", "--json", "hello again", stdin="", env={"COZY_BACKGROUND_JOBS": "0"})
    time.sleep(1.0)
    assert json.loads(cozy("jobs", "list", "--json").stdout)["counts"]["pending"] >= 1


def _done(stdout: str) -> dict[str, object]:
    events = [json.loads(line) for line in stdout.splitlines()]
    assert events[-1]["type"] == "done", events[-1]
    return events[-1]


def test_budget_follows_the_window_the_server_states(configured: FakeModelServer) -> None:
    configured.model_meta = {"max_model_len": 32768}  # as vLLM lists it
    r = cozy("run", "--json", "--stream", "-m", "openai:served-model", "hi", stdin="")
    tokens = _done(r.stdout)["tokens"]
    assert tokens == {**tokens, "window": 32768, "window_source": "provider", "limit": 32768}


def test_a_long_prompt_fits_a_known_large_window(configured: FakeModelServer) -> None:
    prompt = "lorem ipsum dolor sit amet " * 1500  # ~40 KB, ~10k tokens: over the old 8,192
    r = cozy("run", "--json", "-m", "openai:gpt-4o-mini", stdin=prompt)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["status"] == "complete"


def test_unknown_window_sends_the_prompt_and_says_how_to_set_it(
    configured: FakeModelServer,
) -> None:
    prompt = "lorem ipsum dolor sit amet " * 1500
    r = cozy("run", "--json", "-m", "openai:mystery-7b", stdin=prompt)
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    assert body["status"] == "complete" and body["context"]["degraded"]
    assert any("ai.context_windows" in d for d in body["context"]["degrade_reasons"])
    assert configured.turn_requests()[-1]["messages"][-1]["content"] == prompt.rstrip("\n")


def test_too_long_errors_name_the_fix_that_works(
    configured: FakeModelServer, cozy_home: Path
) -> None:
    prompt = "lorem ipsum dolor sit amet " * 400  # ~2.7k tokens
    write_engines(cozy_home, configured.url, "context: {token_budget: 1000}\n")
    r = cozy("run", "--json", "-m", "openai:gpt-4o-mini", stdin=prompt)
    assert r.returncode == 2
    assert "context.token_budget" in json.loads(r.stdout)["error"]["message"]
    write_engines(cozy_home, configured.url)
    extra = "  context_windows: {'openai:gpt-4o-mini': 1500}\n"
    (cozy_home / "engines.yaml").write_text(
        (cozy_home / "engines.yaml").read_text() + extra, encoding="utf-8"
    )
    r = cozy("run", "--json", "-m", "openai:gpt-4o-mini", stdin=prompt)
    assert r.returncode == 2
    message = json.loads(r.stdout)["error"]["message"]
    assert "context_windows" in message and "token_budget" not in message
    # the fix it names works: a larger window lets the same prompt through
    (cozy_home / "engines.yaml").write_text(
        (cozy_home / "engines.yaml").read_text().replace("1500", "8000"), encoding="utf-8"
    )
    r = cozy("run", "--json", "-m", "openai:gpt-4o-mini", stdin=prompt)
    assert r.returncode == 0, r.stderr


def test_a_failed_run_leaves_no_session_in_the_list(configured: FakeModelServer) -> None:
    configured.fail_next(500, times=10)
    r = cozy("run", "--json", "hello", stdin="")
    assert r.returncode == 1
    sid = json.loads(r.stdout)["session_id"]
    listed = json.loads(cozy("sessions", "list", "--json").stdout)
    assert sid not in [s["id"] for s in listed]
    restored = cozy("sessions", "restore", sid)  # nothing lost: the question is kept
    assert restored.returncode == 0, restored.stderr
    shown = json.loads(cozy("sessions", "show", sid, "--json").stdout)
    assert shown["messages"][0]["content"] == "hello"


def test_continue_last_used_session_and_id_prefixes(configured: FakeModelServer) -> None:
    first = json.loads(cozy("run", "--json", "first", stdin="").stdout)["session_id"]
    second = json.loads(cozy("run", "--json", "second", stdin="").stdout)["session_id"]
    assert cozy("sessions", "rename", first, "renamed later").returncode == 0
    r = cozy("run", "--json", "-c", "third", stdin="")  # the last *used*, not renamed
    assert json.loads(r.stdout)["session_id"] == second
    assert cozy("sessions", "show", "last", "--json").stdout.count('"third"') == 1
    # a unique start of an id names the session, with or without `ses_`
    prefix = second[: len(second) - 4]
    shown = json.loads(cozy("sessions", "show", prefix.removeprefix("ses_"), "--json").stdout)
    assert shown["id"] == second
    r = cozy("run", "--json", "-s", prefix, "fourth", stdin="")
    assert json.loads(r.stdout)["session_id"] == second
    n = next(i for i, (a, b) in enumerate(zip(first, second, strict=True)) if a != b)
    common = first[:n]  # ids sort by time: a shared start
    assert len(common) >= 8
    r = cozy("sessions", "show", common)
    assert r.returncode == 2 and "more of the id" in r.stderr
    assert cozy("sessions", "show", "zzzzzz").returncode != 0
