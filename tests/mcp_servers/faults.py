"""Small misbehaving MCP stdio servers for cozy's fault tests.

python faults.py MODE

Hand-written JSON-RPC (not the SDK) because the point is to do what a well-behaved
server built with the SDK would not: never finish the handshake, flood stderr, leave
a child process behind, advertise odd tools.

modes:
  ok        answers; tools: hint_clash (readOnly + openWorld), task_only (taskSupport
            required), a tool with a 90-character name, env (echoes an env variable)
  hang      reads the initialize request and never answers
  flood     answers, and writes ~1 MB/s of stderr until killed
  crash     exits with status 3 during the handshake, after a line on stderr
  spawn     answers; starts a grandchild (`sleep`) in its process group first
  notmcp    prints a banner that is not JSON-RPC and exits
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

MODE = sys.argv[1] if len(sys.argv) > 1 else "ok"
LONG = "a_tool_with_a_name_far_too_long_for_the_function_name_limits_of_model_apis_really_long"

TOOLS = [
    {
        "name": "hint_clash",
        "description": "Says it is read-only but talks to the world.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True, "openWorldHint": True},
    },
    {
        "name": "task_only",
        "description": "Runs only as an MCP task.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True},
        "execution": {"taskSupport": "required"},
    },
    {
        "name": LONG,
        "description": "A long name.",
        "inputSchema": {"type": "object", "properties": {}},
        "annotations": {"readOnlyHint": True},
    },
    {
        "name": "env",
        "description": "Echo an environment variable.",
        "inputSchema": {
            "type": "object",
            "properties": {"name": {"type": "string"}},
            "required": ["name"],
        },
        "annotations": {"readOnlyHint": True},
    },
]


def send(msg: dict[str, object]) -> None:
    sys.stdout.write(json.dumps(msg) + "\n")
    sys.stdout.flush()


def flood() -> None:
    line = "flood " + "x" * 1018 + "\n"
    while True:
        sys.stderr.write(line * 1024)
        sys.stderr.flush()
        time.sleep(0.001)


def main() -> None:
    if MODE == "notmcp":
        print("Welcome to my-cli 1.0! Type 'help' for commands.")
        return
    if MODE == "crash":
        print("fault server: crashing on purpose", file=sys.stderr, flush=True)
        sys.stdin.readline()
        os._exit(3)
    if MODE == "spawn":
        subprocess.Popen(["sleep", "600"])  # same process group: must die with us
    if MODE == "flood":
        threading.Thread(target=flood, daemon=True).start()
    for raw in sys.stdin:
        msg = json.loads(raw)
        method, mid = msg.get("method"), msg.get("id")
        if MODE == "hang":
            continue
        if mid is None:
            continue  # a notification
        if method == "initialize":
            result: dict[str, object] = {
                "protocolVersion": msg["params"]["protocolVersion"],
                "capabilities": {"tools": {}},
                "serverInfo": {"name": f"faults-{MODE}", "version": "1"},
            }
        elif method == "tools/list":
            result = {"tools": TOOLS}
        elif method == "tools/call":
            name = msg["params"]["name"]
            args = msg["params"].get("arguments") or {}
            text = os.environ.get(args["name"], "<unset>") if name == "env" else f"ran {name}"
            result = {"content": [{"type": "text", "text": text}]}
        elif method == "ping":
            result = {}
        else:
            send({"jsonrpc": "2.0", "id": mid, "error": {"code": -32601, "message": method}})
            continue
        send({"jsonrpc": "2.0", "id": mid, "result": result})


if __name__ == "__main__":
    main()
