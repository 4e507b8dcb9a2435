"""`/` commands: the list, completion and parsing (the app runs them)."""

from __future__ import annotations

from dataclasses import dataclass

COMMANDS: dict[str, str] = {
    "/new": "start a new session",
    "/personality": "switch personality (/personality NAME, or pick from a list)",
    "/model": "switch model (/model provider:model, or pick from a list)",
    "/memory": "browse memories",
    "/profile": "browse your profile",
    "/knowledge": "browse knowledge; /knowledge add PATH... [-c COLLECTION] indexes files",
    "/tools": "list the tools this personality may use",
    "/prompt": "send an MCP prompt (/prompt SERVER.NAME key=value... [text]; alone: list them)",
    "/resource": "attach an MCP resource (/resource SERVER:URI your question)",
    "/context": "show or hide the context panel",
    "/export": "export this session as Markdown (/export [FILE])",
    "/file": "attach files to your next message (/file PATH... [-- question]; alone: drop "
    "them); @PATH in a message attaches an existing file too",
    "/rename": "rename this session (/rename TITLE)",
    "/template": "send a prompt template (/template NAME key=value... [text]; alone: list them)",
    "/regen": "answer your last message again, in a new branch (ctrl+r)",
    "/edit": "edit your message #N (default: the last) and send it as a new branch (f6)",
    "/undo": "take back your last message and its answer (the message returns to the prompt)",
    "/branches": "list this conversation's branches and open one (f7)",
    "/restore": "restore the last deleted session",
    "/copy": "copy code block N (/copy N; alone: the last one)",
    "/clear": "clear the view (the session is kept; /new starts a fresh one)",
    "/help": "keys and commands",
    "/quit": "leave cozy",
}


@dataclass(slots=True)
class Command:
    name: str
    arg: str


def complete(prefix: str) -> list[str]:
    """Command names starting with `prefix`, in the order of the list."""
    return [name for name in COMMANDS if name.startswith(prefix)]


def parse(text: str) -> Command | None:
    """A `/command arg` line, or None when the text is a normal prompt (e.g. a path)."""
    stripped = text.strip()
    if not stripped.startswith("/") or stripped.startswith("//"):
        return None
    name, _, arg = stripped.partition(" ")
    if "\n" in name:
        return None
    matches = complete(name)
    if name in COMMANDS:
        return Command(name, arg.strip())
    if len(matches) == 1:
        return Command(matches[0], arg.strip())
    return Command(name, arg.strip())  # unknown or ambiguous: the app says which
