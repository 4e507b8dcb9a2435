"""The npm MCP servers `./install.sh --dev` puts in tests/.node (never fetched at test time).

Missing (no node/npm): the test fails under CI=true and skips locally, as the
Postgres/Redis helpers do.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

import pytest

NODE_DIR = Path(__file__).parent / ".node" / "node_modules" / "@modelcontextprotocol"


def npm_server(name: str, *args: str) -> dict[str, Any]:
    """engines.yaml `servers:` entry for @modelcontextprotocol/server-NAME."""
    script = NODE_DIR / f"server-{name}" / "dist" / "index.js"
    node = shutil.which("node")
    if node is None or not script.is_file():
        why = "node is not on PATH" if node is None else f"{script} is missing"
        msg = f"npm MCP server '{name}' unavailable ({why}); run ./install.sh --dev"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return {"command": node, "args": [str(script), *args]}


def npx_server(name: str, *args: str) -> dict[str, Any]:
    """The same server started the way users configure it, through `npx` (offline,
    from tests/.node): npx runs the real server as its own child process."""
    npm_server(name)  # skips or fails as above when it is not installed
    if shutil.which("npx") is None:
        pytest.skip("npx is not on PATH")
    root = str(NODE_DIR.parent.parent)
    return {"command": "npx", "args": ["--offline", "--prefix", root, f"mcp-server-{name}", *args]}
