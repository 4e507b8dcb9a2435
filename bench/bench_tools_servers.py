"""What configured-but-unused MCP servers cost a command: 1 vs 7 servers, wall time.

    .venv/bin/python bench/bench_tools_servers.py [--rounds 5]

Two cozy homes against the same fake model: one with the test MCP server `test` only,
one with `test` plus six more (four more copies of the test server, the PyPI
`mcp-server-time`, and one that never finishes its handshake, startup_timeout 5 s).
Each round runs, alternating homes so load drifts hit both alike:

- `cozy tools call test.add a=1 b=2`        (only `test` should start)
- `cozy run -p tester "hi"`                  (personality tools: test.* only)
- `cozy run -p tester --json "add"` with one tool round (test.add) -> the tool loop

Figures are medians of whole-process wall time (python start-up and imports
included). The goal: the unused six cost nothing measurable.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from mcp_servers.helpers import SERVER  # noqa: E402

from cozy.testing import FakeModelServer  # noqa: E402

FAULTS = ROOT / "tests" / "mcp_servers" / "faults.py"
PROFILE = "id: tester\nname: Tester\nsystem_prompt: You test.\ntools: ['test.*']\n"


def home(fake_url: str, extra_servers: bool) -> Path:
    path = Path(tempfile.mkdtemp(prefix="bench-tools-"))
    servers = {"test": {"command": sys.executable, "args": [str(SERVER)]}}
    if extra_servers:
        for i in range(4):
            servers[f"copy{i}"] = {"command": sys.executable, "args": [str(SERVER)]}
        servers["time"] = {"command": sys.executable, "args": ["-m", "mcp_server_time"]}
        servers["hang"] = {
            "command": sys.executable,
            "args": [str(FAULTS), "hang"],
            "startup_timeout": 5,
        }
    lines = "".join(f"    {k}: {json.dumps(v)}\n" for k, v in servers.items())
    (path / "engines.yaml").write_text(
        "ai:\n  provider: ollama\n  model: fake-model\n"
        f"  providers:\n    ollama: {{host: '{fake_url}', max_retries: 0}}\n"
        f"tools:\n  provider: mcp\n  servers:\n{lines}",
    )
    (path / "profiles").mkdir()
    (path / "profiles" / "tester.yaml").write_text(PROFILE)
    return path


CPU: dict[tuple[str, ...], list[float]] = {}


def _children_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    return ru.ru_utime + ru.ru_stime


def run(cozy_home: Path, *args: str) -> float:
    """Wall ms; the CPU ms of cozy and its servers (reaped children) go to CPU."""
    env = {**os.environ, "COZY_HOME": str(cozy_home)}
    cpu0 = _children_cpu()
    t0 = time.perf_counter()
    r = subprocess.run(
        [sys.executable, "-m", "cozy", *args],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        start_new_session=True,
    )
    took = (time.perf_counter() - t0) * 1000
    CPU.setdefault((str(cozy_home), *args), []).append((_children_cpu() - cpu0) * 1000)
    if r.returncode != 0:
        raise SystemExit(f"cozy {' '.join(args)} failed: {r.stderr}")
    return took


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    opts = ap.parse_args()
    with FakeModelServer() as fake:
        homes = {"1 server": home(fake.url, False), "7 servers": home(fake.url, True)}
        cases = {
            "tools call test.add": lambda h: run(h, "tools", "call", "test.add", "a=1", "b=2"),
            "run (no tool call)": lambda h: run(h, "run", "-p", "tester", "hi"),
            "run (1 tool round)": lambda h: (
                fake.queue_reply(tool_calls=[("test__add", {"a": 1, "b": 2})]),
                fake.queue_reply("3"),
                run(h, "run", "-p", "tester", "add"),
            )[-1],
        }
        for h in homes.values():  # warm: first imports, bytecode, the SQLite file
            run(h, "tools", "call", "test.add", "a=1", "b=2")
        times: dict[tuple[str, str], list[float]] = {}
        for r in range(opts.rounds):
            order = list(homes.items()) if r % 2 == 0 else list(reversed(homes.items()))
            for case, fn in cases.items():
                for label, h in order:
                    times.setdefault((case, label), []).append(fn(h))
        print(f"load average at the end: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
        print(f"{'command':24} {'1 server':>12} {'7 servers':>12} {'diff':>9}   (wall)")
        for case in cases:
            one = statistics.median(times[(case, "1 server")])
            seven = statistics.median(times[(case, "7 servers")])
            print(f"{case:24} {one:10.0f}ms {seven:10.0f}ms {seven - one:+8.0f}ms")
        print("CPU (cozy + every process it started and reaped), medians:")
        for key, label in ((homes["1 server"], "1 server"), (homes["7 servers"], "7 servers")):
            for (h, *args), ms in sorted(CPU.items()):
                if h == str(key):
                    print(f"  {label:9} {' '.join(args)[:50]:50} {statistics.median(ms):8.0f} ms")
        loop = statistics.median(times[("run (1 tool round)", "1 server")]) - statistics.median(
            times[("run (no tool call)", "1 server")]
        )
        print(f"one tool round over a plain run (1 server, incl. model round trip): {loop:+.0f} ms")


if __name__ == "__main__":
    main()
