"""The parsers behind `cozy run`'s inputs, on their own: the concise schema language,
-o options, templates, fences, page text, and where streamed Markdown may be cut."""

from __future__ import annotations

import pytest

from cozy.cli.pairs import pairs
from cozy.cli.run_inputs import at_files
from cozy.cli.run_render import split_done
from cozy.core import genopts, schemas
from cozy.core.errors import UsageError
from cozy.core.inputs import Fragment, fenced, html_text, image_from_url
from cozy.core.templates import TemplateStore


def test_concise_schema() -> None:
    got = schemas.concise("name, age int, height float: in metres, ok bool")
    assert got["required"] == ["name", "age", "height", "ok"]
    assert got["properties"]["height"] == {"type": "number", "description": "in metres"}
    lines = schemas.concise("name: the full name, with title\nage int")
    assert lines["properties"]["name"]["description"] == "the full name, with title"
    with pytest.raises(UsageError, match="unknown type 'date'"):
        schemas.concise("born date")
    with pytest.raises(UsageError, match="empty"):
        schemas.concise(" , ")
    assert schemas.problem('{"name": "a"}', got) == "the top level: 'age' is a required property"
    assert schemas.problem("[1", got).startswith("not valid JSON")


def test_options() -> None:
    opts = genopts.parse([("temperature", "0"), ("Max-Tokens", "5"), ("stop", "a"), ("stop", "b")])
    assert opts is not None
    assert (opts.temperature, opts.max_tokens, opts.stop) == (0.0, 5, ["a", "b"])
    assert genopts.parse([]) is None
    with pytest.raises(UsageError, match="not a number from 0 to 2"):
        genopts.parse([("temperature", "3")])
    with pytest.raises(UsageError, match="1 or more"):
        genopts.parse([("max_tokens", "0")])
    assert pairs(["('temperature', '0.2')", ("seed", "1")]) == [
        ("temperature", "0.2"),
        ("seed", "1"),
    ]


def test_templates(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = TemplateStore(tmp_path)
    (tmp_path / "t.yaml").write_text("prompt: 'Translate to $lang:'\ndefaults: {lang: French}\n")
    t = store.get("t")
    assert t.render("hello", {}) == ("Translate to French:\n\nhello", None)  # input appended
    assert t.render("hi", {"lang": "German"})[0] == "Translate to German:\n\nhi"
    (tmp_path / "only.yaml").write_text("Summarize $input\n")  # a bare string is the prompt
    assert store.get("only").render("x", {})[0] == "Summarize x"
    (tmp_path / "bad.yaml").write_text("promt: typo\n")
    with pytest.raises(UsageError, match="promt"):
        store.get("bad")
    with pytest.raises(UsageError, match="not a template name"):
        store.path("../escape")


def test_fences_page_text_and_data_urls() -> None:
    assert fenced(Fragment("a.md", "x ``` y")) == "a.md:\n````\nx ``` y\n````"
    page = "<html><body><nav>Menu</nav><script>evil()</script><p>One<br>two</p></body></html>"
    assert html_text(page) == "Menu\nOne\ntwo"
    gif = "R0lGODlhAQABAAAAADs="  # GIF89a header, 1x1
    assert image_from_url(f"data:image/gif;base64,{gif}").mime == "image/gif"
    with pytest.raises(UsageError, match="data URL"):
        image_from_url("https://example.com/a.png")
    with pytest.raises(UsageError, match="not a PNG"):
        image_from_url("data:image/png;base64,aGVsbG8=")


def test_markdown_is_cut_only_between_blocks_outside_fences() -> None:
    assert split_done("Hello wor") == 0
    assert split_done("Para one.\n\nPara tw") == len("Para one.\n\n")
    text = "Intro\n\n```py\na = 1\n\nb = 2\n"  # a blank line inside an open fence
    assert split_done(text) == len("Intro\n\n")
    closed = text + "```\n\nAfter"
    assert split_done(closed) == len(text + "```\n\n")


def test_at_files(tmp_path) -> None:  # type: ignore[no-untyped-def]
    f = tmp_path / "notes.txt"
    f.write_text("x")
    words, found = at_files([f"what is in @{f}?", "@nobody here"])
    assert words == [f"what is in {f}?", "@nobody here"] and found == [str(f)]


def test_key_value_spelling_of_pairs() -> None:
    from cozy.cli.pairs import split_key_values

    flags = {"-o", "--option"}
    assert split_key_values(["-o", "temperature=0.2", "hi"], flags) == [
        "-o", "temperature", "0.2", "hi",
    ]  # fmt: skip
    assert split_key_values(["-o", "stop", "a=b"], flags) == ["-o", "stop", "a=b"]
    assert split_key_values(["--", "-o", "x=1"], flags) == ["--", "-o", "x=1"]
