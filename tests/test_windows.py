"""Context windows per model, num_ctx for Ollama, calibrated token accounting."""

from __future__ import annotations

from pathlib import Path

from helpers import collect, open_runtime, req, running

from cozy.core.events import Done, Failed
from cozy.core.windows import CalibratedEstimator, ContextWindows, family, known_window
from cozy.testing import FakeModelServer


def test_families_and_known_windows() -> None:
    assert family("llama3.2:3b-instruct-q4") == "llama3.2"
    assert family("gpt-4o-mini-2024-07-18") == "gpt-4o-mini"
    assert known_window("llama3.2:3b") == 131072
    assert known_window("gpt-4o-mini") == 128000
    assert known_window("gpt-4") == 8192
    assert known_window("totally-new-model") is None


async def test_window_from_provider_and_num_ctx_sent(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    async with running(cozy_home, fake_model.url, "context: {token_budget: 100000}\n") as rt:
        events = await collect(rt.orchestrator.run(req("hello")))
        done = events[-1]
        assert isinstance(done, Done)
        # the fake server reports an 8192-token window through /api/show
        assert done.tokens["window"] == 8192 and done.tokens["window_source"] == "provider"
        assert done.tokens["limit"] == 8192
        sent = fake_model.turn_requests()[-1]["options"]
        assert sent["num_ctx"] == 8192  # Ollama is told the window instead of its 4096 default
        saved = await rt.store.list_messages(done.session_id)
        assert saved[-1].metadata["tokens"]["reported_prompt"] == done.usage["prompt_tokens"]


async def test_engines_yaml_override_and_small_window_error(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    extra = "  context_windows: {fake-model: 600}\n"  # under ai:
    async with running(cozy_home, fake_model.url, extra) as rt:
        events = await collect(rt.orchestrator.run(req("short question")))
        done = events[-1]
        assert isinstance(done, Done) and done.tokens["window"] == 600
        assert done.tokens["window_source"] == "engines.yaml"
        assert fake_model.turn_requests()[-1]["options"]["num_ctx"] == 600
        events = await collect(rt.orchestrator.run(req("word " * 3000)))
        failed = events[-1]
        assert isinstance(failed, Failed)
        msg = failed.error["message"]
        assert failed.error["code"] == "context_length_exceeded"
        assert "ollama:fake-model window 600 from engines.yaml" in msg


def test_calibration_converges() -> None:
    est = CalibratedEstimator()
    true_ratio = 1.37  # the real tokenizer counts 37 % more than the raw estimate
    texts = [("lorem ipsum dolor sit amet " * n) for n in (10, 40, 25, 80, 15)]
    for text in texts:
        guess = est.count(text)
        est.observe(guess, int(len(text) / 4 * true_ratio))
    probe = "consectetur adipiscing elit " * 50
    reported = len(probe) / 4 * true_ratio
    assert abs(est.count(probe) - reported) / reported < 0.10


async def test_estimator_converges_on_the_servers_counts(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    rt = await open_runtime(cozy_home, fake_model.url)
    try:
        errors = []
        for i in range(6):
            prompt = " ".join(f"token{j}" for j in range(20 + 15 * i))
            events = await collect(rt.orchestrator.run(req(prompt, personality="plain")))
            done = events[-1]
            assert isinstance(done, Done)
            est, rep = done.tokens["estimated_prompt"], done.tokens["reported_prompt"]
            errors.append(abs(est - rep) / rep)
        assert errors[0] > 0.10, errors  # words are not four characters: starts off
        assert max(errors[-3:]) < 0.10, errors  # converged on the reported counts
        # the calibration outlives the process (kept in the L2 cache)
        await rt.close()
        rt = await open_runtime(cozy_home, fake_model.url)
        assert (await rt.orchestrator.accounting.for_model("fake-model")).samples >= 6
    finally:
        await rt.close()


async def test_windows_are_cached() -> None:
    class Counting:
        calls = 0

        async def context_window(self, model: str) -> int | None:
            Counting.calls += 1
            return 2048

    w = ContextWindows()
    for _ in range(3):
        assert await w.resolve(Counting(), "x", "m") == (2048, "provider")  # type: ignore[arg-type]
    assert Counting.calls == 1


async def test_reported_windows_outlive_the_process_in_the_l2_cache(tmp_path: Path) -> None:
    from cozy.storage.cache import DiskL2Cache

    class Counting:
        calls = 0
        host = "http://127.0.0.1:1"

        async def context_window(self, model: str) -> int | None:
            Counting.calls += 1
            return 4321

    cache = DiskL2Cache(tmp_path / "cache")
    try:
        for _ in range(2):  # two processes' worth: a fresh ContextWindows, one shared L2
            w = ContextWindows(cache=cache)
            assert await w.resolve(Counting(), "x", "m") == (4321, "provider")  # type: ignore[arg-type]
        assert Counting.calls == 1
        other_host = type("Other", (Counting,), {"host": "http://127.0.0.1:2"})()
        assert await ContextWindows(cache=cache).resolve(other_host, "x", "m") == (4321, "provider")
        assert Counting.calls == 2  # keyed by where the model lives, not just its name
    finally:
        cache.close()
