"""`cozy run`'s inputs as a user types them: fragments (-f, @file), attachments and
images (-a), per-run options (-o), --schema, templates (-t, --param) and a refused
huge prompt. Subprocesses against the fake model server, which records what each
provider's wire format carried."""

from __future__ import annotations

import base64
import hashlib
import json
import struct
import zlib
from pathlib import Path

import jsonschema
import pytest
from helpers import cozy, write_engines

from cozy.testing import FakeModelServer


@pytest.fixture
def configured(cozy_home: Path, fake_model: FakeModelServer) -> FakeModelServer:
    write_engines(cozy_home, fake_model.url)
    return fake_model


def png(width: int = 2, height: int = 2) -> bytes:
    """A real (tiny, red) PNG file."""
    raw = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw))
        + chunk(b"IEND", b"")
    )


def last_user(fake: FakeModelServer) -> dict:
    return next(m for m in reversed(fake.turn_requests()[-1]["messages"]) if m["role"] == "user")


def sessions() -> list[dict]:
    return json.loads(cozy("sessions", "list", "--json").stdout)


# -- fragments ------------------------------------------------------------------------
def test_fragments_from_a_file_a_directory_stdin_and_at_file(
    configured: FakeModelServer, tmp_path: Path
) -> None:
    code = tmp_path / "app.py"
    code.write_text("def answer():\n    return 42\n")
    proj = tmp_path / "proj"
    (proj / "pkg").mkdir(parents=True)
    (proj / "README.md").write_text("# proj\nA demo.\n")
    (proj / "pkg" / "mod.py").write_text("X = '```'\n")  # a fence inside stays inside
    (proj / ".git").mkdir()
    (proj / ".git" / "config").write_text("secret-ish")
    (proj / "logo.bin").write_bytes(b"\x00\x01\x02")

    r = cozy("run", "--json", "-f", str(code), "-f", str(proj), "what does it do?", stdin="")
    assert r.returncode == 0, r.stderr
    sent = last_user(configured)["content"]
    assert "return 42" in sent and "A demo." in sent and "X = '```'" in sent
    assert "secret-ish" not in sent and "\x00" not in sent  # .git and binaries skipped
    assert sent.endswith("what does it do?") and "````" in sent  # longer fence for mod.py
    body = json.loads(r.stdout)
    sources = [f["source"] for f in body["inputs"]["fragments"]]
    assert sources == [str(code), str(proj / "README.md"), str(proj / "pkg" / "mod.py")]
    stored = json.loads(cozy("sessions", "show", body["session_id"], "--json").stdout)
    assert stored["messages"][0]["content"] == sent  # the question as the model saw it

    r = cozy("run", "--json", "-f", "-", "summarize", stdin="piped text\n")
    assert r.returncode == 0, r.stderr
    assert last_user(configured)["content"] == "stdin:\n```\npiped text\n```\n\nsummarize"

    r = cozy("run", "--json", f"explain @{code} briefly", stdin="")
    assert r.returncode == 0, r.stderr
    sent = last_user(configured)["content"]
    assert "return 42" in sent and sent.endswith(f"explain {code} briefly")


def test_bad_fragments_say_what_works(configured: FakeModelServer, tmp_path: Path) -> None:
    r = cozy("run", "-f", str(tmp_path / "nope.txt"), "hi", stdin="")
    assert r.returncode == 2 and "no such file" in r.stderr
    image = tmp_path / "photo.png"
    image.write_bytes(png())
    r = cozy("run", "-f", str(image), "hi", stdin="")
    assert r.returncode == 2 and f"-a {image}" in r.stderr
    assert configured.chat_requests() == [] and sessions() == []


# -- images ---------------------------------------------------------------------------
def test_images_go_to_ollama_and_openai_in_their_shapes(
    configured: FakeModelServer, tmp_path: Path
) -> None:
    image = tmp_path / "red.png"
    data = png()
    image.write_bytes(data)
    b64 = base64.b64encode(data).decode()

    r = cozy("run", "--json", "-m", "ollama:llava", "-a", str(image), "what colour?", stdin="")
    assert r.returncode == 0, r.stderr
    msg = last_user(configured)
    assert msg["content"] == "what colour?" and msg["images"] == [b64]
    sent = json.loads(r.stdout)["inputs"]["images"][0]
    assert sent["mime"] == "image/png" and sent["sha256"] == hashlib.sha256(data).hexdigest()

    r = cozy("run", "--json", "-m", "openai:gpt-4o-mini", "-a", str(image), "and now?", stdin="")
    assert r.returncode == 0, r.stderr
    parts = last_user(configured)["content"]
    assert parts[0] == {"type": "text", "text": "and now?"}
    assert parts[1]["image_url"]["url"] == f"data:image/png;base64,{b64}"


def test_a_text_only_model_refuses_images_and_stores_nothing(
    configured: FakeModelServer, tmp_path: Path
) -> None:
    image = tmp_path / "red.png"
    image.write_bytes(png())
    # an Ollama model whose /api/show lists no "vision" capability
    r = cozy("run", "-m", "ollama:fake-model", "-a", str(image), "hi", stdin="")
    assert r.returncode == 2 and "ollama:fake-model reads text only" in r.stderr
    assert configured.chat_requests() == []
    r = cozy("run", "--json", "-m", "local:smollm2-135m", "-a", str(image), "hi", stdin="")
    assert r.returncode == 2
    message = json.loads(r.stdout)["error"]["message"]
    assert "reads text only" in message and "-m ollama:llava" in message
    assert sessions() == []  # refused before anything was written


# -- options --------------------------------------------------------------------------
def test_options_reach_the_model_and_unknown_ones_are_named(
    configured: FakeModelServer,
) -> None:
    r = cozy("run", "-o", "temperature", "0.2", "-o", "max_tokens", "7", "-o", "stop", "##", "hi")
    assert r.returncode == 0, r.stderr
    opts = configured.turn_requests()[-1]["options"]  # Ollama's wire format
    assert opts["temperature"] == 0.2 and opts["num_predict"] == 7 and opts["stop"] == ["##"]
    r = cozy("run", "-m", "openai:gpt-4o-mini", "-o", "top_p", "0.5", "hi", stdin="")
    assert r.returncode == 0 and configured.turn_requests()[-1]["top_p"] == 0.5
    r = cozy("run", "-o", "temp", "0.2", "hi", stdin="")
    assert r.returncode == 2 and "unknown option 'temp'" in r.stderr
    assert "temperature" in r.stderr
    r = cozy("run", "-o", "max_tokens", "lots", "hi", stdin="")
    assert r.returncode == 2 and "max_tokens: 'lots' is not a whole number" in r.stderr


# -- schemas --------------------------------------------------------------------------
def test_concise_schema_is_sent_and_the_answer_validated(configured: FakeModelServer) -> None:
    r = cozy("run", "--json", "--schema", "name, age int, bio: their bio", "a person")
    assert r.returncode == 0, r.stderr
    body = json.loads(r.stdout)
    fmt = configured.turn_requests()[-1]["format"]  # Ollama's `format`: the schema
    assert fmt["properties"]["age"] == {"type": "integer"}
    assert fmt["properties"]["bio"]["description"] == "their bio"
    jsonschema.validate(body["data"], fmt)
    assert json.loads(body["text"]) == body["data"]
    plain = cozy("run", "--schema", "name, age int", "a person", stdin="")
    assert plain.returncode == 0 and set(json.loads(plain.stdout)) == {"name", "age"}


def test_schema_file_multi_and_one_repair(configured: FakeModelServer, tmp_path: Path) -> None:
    path = tmp_path / "dog.json"
    schema = {"type": "object", "properties": {"breed": {"type": "string"}}, "required": ["breed"]}
    path.write_text(json.dumps(schema))
    r = cozy("run", "--json", "--schema-multi", str(path), "three dogs", stdin="")
    assert r.returncode == 0, r.stderr
    assert isinstance(json.loads(r.stdout)["data"]["items"], list)

    # the fake always answers valid JSON under a schema (as constrained decoding does);
    # an answer cut off by max_tokens is not valid JSON: one repair round is made
    long = {"breed": "a rough collie from the highlands of Scotland"}
    configured.queue_reply(json=long)
    r = cozy("run", "--json", "--schema", str(path), "-o", "max_tokens", "4", "a dog", stdin="")
    assert r.returncode == 0, r.stderr
    assert "breed" in json.loads(r.stdout)["data"]
    repair = last_user(configured)["content"]
    assert "not valid for the JSON schema" in repair and "not valid JSON" in repair

    configured.queue_reply(json=long)
    configured.queue_reply(json=long)
    r = cozy("run", "--json", "--schema", str(path), "-o", "max_tokens", "4", "a dog", stdin="")
    assert r.returncode == 1
    assert json.loads(r.stdout)["error"]["code"] == "schema_mismatch"

    r = cozy("run", "--schema", "name, age integer x", "hi", stdin="")
    assert r.returncode == 2 and "name [type][: description]" in r.stderr
    r = cozy("run", "--schema", '{"type": "objectx"}', "hi", stdin="")
    assert r.returncode == 2 and "not a valid JSON Schema" in r.stderr


# -- templates ------------------------------------------------------------------------
def test_templates_with_parameters(configured: FakeModelServer, cozy_home: Path) -> None:
    r = cozy("templates", "list")
    assert r.returncode == 0 and "no templates yet" in r.stderr
    r = cozy(
        "templates", "set", "sum", "--prompt", "Summarize in $words words: $input",
        "--system", "Be $tone.", "--default", "words", "10", "-o", "temperature", "0.1",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert (cozy_home / "templates" / "sum.yaml").is_file()
    listed = json.loads(cozy("templates", "list", "--json").stdout)
    assert listed == [{"name": "sum", "params": ["words", "tone"], "description": ""}]
    assert "$words" in cozy("templates", "show", "sum").stdout

    r = cozy("run", "-t", "sum", "--param", "tone", "dry", "the text", stdin="")
    assert r.returncode == 0, r.stderr
    req = configured.turn_requests()[-1]
    assert last_user(configured)["content"] == "Summarize in 10 words: the text"
    assert "Be dry." in req["messages"][0]["content"] and req["options"]["temperature"] == 0.1
    r = cozy("run", "-t", "sum", "-P", "tone", "warm", "-P", "words", "3", stdin="piped\n")
    assert last_user(configured)["content"] == "Summarize in 3 words: piped"

    r = cozy("run", "-t", "sum", "x", stdin="")
    assert r.returncode == 2 and "needs tone" in r.stderr and "--param tone VALUE" in r.stderr
    r = cozy("run", "-t", "nope", "x", stdin="")
    assert r.returncode == 2 and "cozy templates set nope" in r.stderr
    assert cozy("templates", "rm", "sum").returncode == 0
    assert cozy("templates", "show", "sum").returncode == 2


# -- refusals store nothing -----------------------------------------------------------
def test_a_refused_huge_prompt_is_not_stored(configured: FakeModelServer, cozy_home: Path) -> None:
    path = write_engines(cozy_home, configured.url)
    path.write_text(path.read_text() + "  context_windows: {'openai:gpt-4o-mini': 2000}\n")
    big = "lorem ipsum dolor sit amet " * 2000  # ~13k tokens
    r = cozy("run", "--json", "-m", "openai:gpt-4o-mini", stdin=big)
    assert r.returncode == 2, r.stderr
    err = json.loads(r.stdout)
    assert err["session_id"] is None and "context_windows" in err["error"]["message"]
    assert "sessions restore" not in r.stderr  # nothing was kept to restore
    assert sessions() == [] and configured.chat_requests() == []
    # an existing session gets no half turn either
    assert cozy("run", "-m", "openai:gpt-4o-mini", "hi", stdin="").returncode == 0
    r = cozy("run", "-c", "-m", "openai:gpt-4o-mini", stdin=big)
    assert r.returncode == 2
    shown = json.loads(cozy("sessions", "show", "last", "--json").stdout)
    assert shown["messages"][0]["content"] == "hi" and len(shown["messages"]) == 2


def test_pdf_and_web_page_fragments(configured: FakeModelServer, tmp_path: Path) -> None:
    import functools
    import http.server
    import threading

    from knowledge_files import write_pdf

    pdf = write_pdf(tmp_path / "report.pdf", ["Quarterly revenue rose by 12 percent."])
    site = tmp_path / "site"
    site.mkdir()
    (site / "page.html").write_text(
        "<!doctype html><html><head><style>p{color:red}</style><script>var x=1;</script>"
        "</head><body><h1>Release notes</h1><p>Version 2 adds &amp; fixes things.</p>"
        "</body></html>"
    )
    (site / "big.txt").write_text("x" * (3 * 1024 * 1024))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        r = cozy("run", "--json", "-f", str(pdf), "-f", f"{base}/page.html", "summarise")
        assert r.returncode == 0, r.stderr
        sent = last_user(configured)["content"]
        assert "Quarterly revenue rose by 12 percent." in sent
        assert "Release notes" in sent and "Version 2 adds & fixes things." in sent
        assert "color:red" not in sent and "var x" not in sent and "<p>" not in sent
        r = cozy("run", "-f", f"{base}/missing.txt", "hi", stdin="")
        assert r.returncode == 2 and "HTTP 404" in r.stderr
        r = cozy("run", "-f", f"{base}/big.txt", "hi", stdin="")
        assert r.returncode == 2 and "COZY_MAX_FRAGMENT_BYTES" in r.stderr
    finally:
        server.shutdown()
