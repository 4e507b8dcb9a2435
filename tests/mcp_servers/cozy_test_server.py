"""A real MCP server for cozy's tools tests.

python cozy_test_server.py                       # stdio
python cozy_test_server.py --http PORT           # streamable HTTP on 127.0.0.1:PORT/mcp
"""

from __future__ import annotations

import asyncio
import base64
import os
import sys
import time

from mcp.server.mcpserver import Context, MCPServer
from mcp_types import AudioContent, ImageContent, TextContent, ToolAnnotations

server = MCPServer("cozy-test")
NOTES: list[str] = []


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def add(a: int, b: int) -> str:
    """Add two integers."""
    return str(a + b)


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
def write_note(text: str) -> str:
    """Store a note in memory."""
    NOTES.append(text)
    return f"stored note #{len(NOTES)}"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def delete_all() -> str:
    """Delete every note."""
    NOTES.clear()
    return "deleted"


@server.tool(annotations=ToolAnnotations(read_only_hint=False, open_world_hint=True))
def fetch(url: str) -> str:
    """Pretend to fetch a URL."""
    return f"fetched {url}"


@server.tool()
def unannotated(x: str = "") -> str:
    """A tool without annotations."""
    return f"unannotated {x}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def sleep(seconds: float) -> str:
    """Sleep (hangs when asked for long)."""
    await asyncio.sleep(seconds)
    return "slept"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def wait(seconds: float, marker: str) -> str:
    """Sleep, writing to the file `marker` "started", then "cancelled" if the client
    cancels the request (notifications/cancelled) or "finished"."""
    _mark(marker, "started", "w")
    try:
        await asyncio.sleep(seconds)
    except BaseException:  # the request's cancel scope: the client sent notifications/cancelled
        _mark(marker, "cancelled")
        raise
    _mark(marker, "finished")
    return "waited"


def _mark(path: str, word: str, mode: str = "a") -> None:
    with open(path, mode) as fh:
        fh.write(word + "\n")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def block(seconds: float) -> str:
    """Block the whole process (sync sleep)."""
    time.sleep(seconds)
    return "blocked"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def spin(seconds: float) -> str:
    """Burn CPU for `seconds` of CPU time (to hit a CPU limit)."""
    start = time.process_time()
    while time.process_time() - start < seconds:
        sum(range(10_000))
    return "spun"


@server.tool(annotations=ToolAnnotations(destructive_hint=True))
def crash() -> str:
    """Kill the server process."""
    print("crash tool: exiting now", file=sys.stderr, flush=True)
    os._exit(3)


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def big(size: int = 100_000) -> str:
    """Return a lot of text."""
    return "x" * size


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def plain() -> str:
    """Return text that is not JSON."""
    return "this is {not json: at all"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def picture() -> list[TextContent | ImageContent]:
    """Return an image with a caption."""
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 100).decode()
    return [TextContent(text="a tiny picture"), ImageContent(data=png, mime_type="image/png")]


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def sound() -> list[TextContent | AudioContent | ImageContent]:
    """Return a short WAV clip and an SVG image (a type models do not read)."""
    wav = base64.b64encode(b"RIFF" + b"\0" * 60).decode()
    svg = base64.b64encode(b"<svg xmlns='http://www.w3.org/2000/svg'/>").decode()
    return [
        TextContent(text="a beep"),
        AudioContent(data=wav, mime_type="audio/wav"),
        ImageContent(data=svg, mime_type="image/svg+xml"),
    ]


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
async def chatty(ctx: Context, count: int = 3, pause: float = 0.0) -> str:
    """While running, log one debug line, `count` info lines, then one error line
    (notifications/message), `pause` seconds apart."""
    import warnings

    lines = [("debug", "debug detail")]
    lines += [("info", f"step {i + 1} of {count}") for i in range(count)]
    lines.append(("error", "something looked wrong"))
    with warnings.catch_warnings():  # logging is deprecated by the newest spec, still sent
        warnings.simplefilter("ignore")
        for level, text in lines:
            await ctx.log(level, text, logger_name="chatty")  # type: ignore[arg-type]
            if pause:
                await asyncio.sleep(pause)
    return f"logged {len(lines)} lines"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def env(name: str) -> str:
    """Echo an environment variable ('<unset>' when missing)."""
    return os.environ.get(name, "<unset>")


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def whoami() -> str:
    """pid, cwd and resource limits of the server process."""
    import resource

    cpu = resource.getrlimit(resource.RLIMIT_CPU)[0]
    mem = resource.getrlimit(resource.RLIMIT_AS)[0]
    return f"pid={os.getpid()} cwd={os.getcwd()} cpu={cpu} as={mem}"


@server.tool(annotations=ToolAnnotations(read_only_hint=True))
def noop() -> str:
    """Do nothing (for overhead benchmarks)."""
    return ""


@server.tool(annotations=ToolAnnotations(read_only_hint=False, destructive_hint=False))
async def grow(ctx: Context) -> str:
    """Add a tool named `extra` and tell the client the tool list changed."""

    def extra() -> str:
        return "extra!"

    server.add_tool(extra, name="extra", annotations=ToolAnnotations(read_only_hint=True))
    await ctx.session.send_tool_list_changed()
    return "grown"


@server.prompt(description="")
def bare(topic: str) -> str:
    return f"Say one thing about {topic}."


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--http":
        server.run("streamable-http", host="127.0.0.1", port=int(sys.argv[2]))
    elif len(sys.argv) > 2 and sys.argv[1] == "--sse":
        server.run("sse", host="127.0.0.1", port=int(sys.argv[2]))
    else:
        server.run("stdio")


if __name__ == "__main__":
    main()
