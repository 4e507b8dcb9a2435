"""`cozy run`'s command line made into a turn: prompt (arguments, stdin, `@file`),
fragments and attachments, a template with its parameters, `--schema` and `-o`.

The parsing itself lives below the face (cozy.core.inputs, schemas, templates,
genopts) so the server can accept the same inputs; this module only decides what
the flags mean together (a template's defaults, then the command line).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cozy.core.errors import UsageError

MAX_PROMPT_CHARS = int(os.environ.get("COZY_MAX_PROMPT_CHARS", str(8 * 1024 * 1024)))


@dataclass(slots=True)
class InputFlags:
    words: list[str] = field(default_factory=list)
    fragments: list[str] = field(default_factory=list)
    attachments: list[str] = field(default_factory=list)
    template: str | None = None
    params: list[tuple[str, str]] = field(default_factory=list)
    options: list[tuple[str, str]] = field(default_factory=list)
    schema: str | None = None
    schema_multi: str | None = None


@dataclass(slots=True)
class Prepared:
    """What the flags came to (the rest of the command line is taken as given)."""

    text: str
    system: str | None = None
    model: str | None = None
    personality: str | None = None
    options: Any = None  # GenerationOptions | None
    images: list[Any] = field(default_factory=list)
    input_meta: dict[str, Any] | None = None
    schema: dict[str, Any] | None = None
    # each fragment (cozy.core.inputs.Fragment): sent in front of `text`, and stored
    # once by hash, the stored message pointing at it
    fragments: list[Any] = field(default_factory=list)


def read_prompt(words: list[str] | None, *, stdin: bool = True) -> str:
    """Prompt from arguments, stdin, or both (arguments first, then stdin)."""
    parts = [" ".join(words)] if words else []
    if stdin and not sys.stdin.isatty():
        data = sys.stdin.buffer.read(MAX_PROMPT_CHARS * 4 + 1)
        # the newline a shell or `echo` ends the input with is not part of the prompt
        text = data.decode("utf-8", errors="replace").rstrip("\r\n")
        if text.strip():
            parts.append(text)
    prompt = "\n\n".join(p for p in parts if p.strip())
    check_size(prompt)
    return prompt


def check_size(prompt: str) -> None:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise UsageError(
            f"the prompt is {len(prompt):,} characters; the limit is {MAX_PROMPT_CHARS:,}",
            hint="set COZY_MAX_PROMPT_CHARS, or add the text with `cozy knowledge add`",
        )


def at_files(words: list[str]) -> tuple[list[str], list[str]]:
    """`@path` words naming existing files become fragments (see `inputs.at_files`)."""
    from cozy.core.inputs import at_files as find

    found: list[str] = []
    out = []
    for w in words:
        text, paths = find(w)
        out.append(text)
        found += paths
    return out, found


def prepare(flags: InputFlags) -> Prepared:
    """The turn's text, system, model, options, images and schema from the flags.

    Each parser is imported only when its flag is used: a plain `cozy run "hi"` pays
    for none of them (it is the path the start-up benchmark measures)."""
    template = _template(flags.template) if flags.template else None
    if flags.params and template is None:
        raise UsageError("--param fills a template's $names", hint="add -t TEMPLATE")
    words, at = at_files(flags.words) if any("@" in w for w in flags.words) else (flags.words, [])
    uses_stdin = "-" in flags.fragments or "-" in flags.attachments
    text = read_prompt(words, stdin=not uses_stdin)
    out = Prepared(text)
    pairs = list(flags.options)
    if template is not None:
        text, out.system = template.render(text, dict(flags.params))
        out.model, out.personality = template.model, template.personality
        pairs = [(k, str(v)) for k, v in template.options.items()] + pairs
    out.text = text
    if at or flags.fragments or flags.attachments:
        from cozy.core import inputs

        got = inputs.gather([*at, *flags.fragments], flags.attachments, sys.stdin.buffer)
        check_size(got.prompt(text))  # what the model would be sent
        out.images, out.input_meta = got.images, got.metadata()
        out.fragments = got.fragments
    if pairs:
        from cozy.core import genopts

        out.options = genopts.parse(pairs)
    raw = flags.schema or flags.schema_multi
    if raw is None and template is not None and template.schema_ is not None:
        raw = template.schema_
    if raw is not None:
        from cozy.core import schemas

        schema = schemas.resolve(raw) if isinstance(raw, str) else raw
        out.schema = schemas.many(schema) if flags.schema_multi else schema
    return out


def _template(name: str) -> Any:
    from cozy.cli._common import state
    from cozy.core.templates import TemplateStore

    return TemplateStore(templates_dir(state.settings())).get(name)


def templates_dir(settings: Any) -> Path:
    return Path(settings.config_dir) / "templates"
