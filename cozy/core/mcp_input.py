"""MCP prompts and resources as a turn's input, for every face (`cozy run --prompt /
--resource`, the TUI's /prompt and /resource): parse the user's words, ask the tools
engine through its capability protocols, build the text the turn sends."""

from __future__ import annotations

from typing import Any, TypeVar

from cozy.core.errors import ConfigError, UsageError
from cozy.engines.capabilities import ServesPrompts, ServesResources

T = TypeVar("T")


def engine_for(engine: Any, need: type[T]) -> T:
    if not isinstance(engine, need):
        raise ConfigError(
            "the tools engine has no MCP servers",
            hint="set `tools: {provider: mcp, servers: ...}` in engines.yaml",
        )
    return engine


def split_words(words: list[str]) -> tuple[list[str], list[str]]:
    """Leading `key=value` words (a prompt's arguments) and the rest (extra text)."""
    rest = list(words)
    pairs: list[str] = []
    while rest and "=" in rest[0] and not rest[0].startswith("="):
        pairs.append(rest.pop(0))
    return pairs, rest


def split_ref(ref: str) -> tuple[str, str]:
    server, sep, uri = ref.partition(":")
    if not sep or not server or not uri:
        raise UsageError(
            f"'{ref}' is not SERVER:URI",
            hint="e.g. `everything:demo://resource/static/document/features.md`; "
            "`cozy tools resources` lists them",
        )
    return server, uri


async def read_ref(engine: Any, ref: str) -> Any:
    server, uri = split_ref(ref)
    return await engine_for(engine, ServesResources).read_resource(server, uri)


async def render_prompt(engine: Any, qualified: str, pairs: list[str]) -> str:
    """SERVER.NAME with `key=value` arguments, rendered by the server as one user turn."""
    if "." not in qualified:
        raise UsageError(
            f"prompt '{qualified}' is not SERVER.NAME", hint="`cozy tools prompts` lists them"
        )
    args: dict[str, str] = {}
    for pair in pairs:
        key, _, value = pair.partition("=")
        args[key] = value
    messages = await engine_for(engine, ServesPrompts).get_prompt(qualified, args)
    if all(m["role"] == "user" for m in messages):
        return "\n\n".join(m["content"] for m in messages)
    return "\n\n".join(f"[{m['role']}]\n{m['content']}" for m in messages)


def attach_resources(text: str, resources: list[Any]) -> str:
    """The turn's text with each resource before it, cited as SERVER:URI."""
    blocks = []
    for r in resources:
        cut = " (truncated)" if r.truncated else ""
        blocks.append(f'<resource ref="{r.server}:{r.uri}"{cut}>\n{r.text}\n</resource>')
    blocks.append(text)
    return "\n\n".join(blocks)
