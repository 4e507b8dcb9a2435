"""Start-up guard: one-shot commands do not import what only other paths need.

Not timed (the box is shared): each case runs the real command in a fresh interpreter
and then lists the heavy modules it loaded. The figures live in bench/bench_knowledge.py.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import typer
import typer.main
from helpers import write_engines
from rich.console import Console
from rich.progress import Progress
from typer.core import TyperGroup

from cozy.cli.app import app
from cozy.cli.lazy import COMMANDS, LazyCommands
from cozy.cli.progress import Counter, ProgressLike, progress_bar
from cozy.testing import FakeModelServer

# runs `cozy ARGS...` in this interpreter, then prints the loaded modules under HEAVY
PROBE = """
import json, sys
from cozy.cli.app import app
try:
    app(sys.argv[2:], prog_name="cozy", standalone_mode=False)
except SystemExit as exc:
    assert not exc.code, exc
heavy = tuple(json.loads(sys.argv[1]))
print("MODULES=" + json.dumps(sorted(m for m in sys.modules if m.startswith(heavy))))
"""

# the chat layer: only turns need it
CHAT = ["cozy.core.orchestrator", "cozy.core.context", "cozy.core.turn", "cozy.core.toolloop"]


def loaded(*args: str, heavy: list[str] = CHAT) -> list[str]:
    proc = subprocess.run(
        [sys.executable, "-c", PROBE, json.dumps(heavy), *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COZY_BACKGROUND_JOBS": "0"},
    )
    assert proc.returncode == 0, proc.stderr
    line = [x for x in proc.stdout.splitlines() if x.startswith("MODULES=")][-1]
    modules: list[str] = json.loads(line.removeprefix("MODULES="))
    return modules


def test_knowledge_commands_skip_the_chat_layer_and_the_bar_off_a_terminal(
    cozy_home: Path, fake_model: FakeModelServer, tmp_path: Path
) -> None:
    write_engines(cozy_home, fake_model.url, "knowledge: {provider: local, embed: false}\n")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "a.md").write_text("# A\n\nkeys rotate every 90 days\n")
    heavy = [*CHAT, "rich.progress"]  # stderr is a pipe here: no bar is drawn
    assert loaded("knowledge", "add", str(notes), "--no-embed", heavy=heavy) == []
    assert loaded("knowledge", "stats", heavy=heavy) == []
    assert loaded("knowledge", "search", "rotate", heavy=heavy) == []


def test_progress_bar_only_on_a_terminal_and_the_counter_acts_like_rich() -> None:
    def make() -> Progress:
        return Progress(console=tty, transient=True, auto_refresh=False)

    tty = Console(file=io.StringIO(), force_terminal=True)
    assert isinstance(progress_bar(tty, make, disable=False), Progress)
    assert isinstance(progress_bar(tty, make, disable=True), Counter)
    for disable in (False, True):  # off a terminal: same counts, same output as rich's bar
        consoles = [Console(file=io.StringIO(), force_terminal=False) for _ in range(2)]
        counter = progress_bar(consoles[0], make, disable=disable)
        assert isinstance(counter, Counter) and counter.console is consoles[0]
        rich_bar = Progress(console=consoles[1], transient=True, disable=disable)
        bars: list[ProgressLike] = [counter, rich_bar]
        for bar in bars:
            with bar:
                a = bar.add_task("indexing", total=None, bytes="")
                b = bar.add_task("embedding", total=4)
                bar.update(a, total=3, bytes="0 B")
                bar.update(a, advance=1)
                bar.console.print("[green]added[/] a.md", markup=True)
                bar.update(a, advance=1)
                bar.update(b, completed=2, total=5)
                bar.update(b, completed=1, advance=2)
            bar.console.print("summary")
        assert [t.completed for t in counter.tasks] == [t.completed for t in rich_bar.tasks]
        assert [t.completed for t in counter.tasks] == [2, 1]
        out = [c.file.getvalue() for c in consoles]
        assert (
            out[0] == out[1] == ("added a.md\nsummary\n" if disable else "added a.md\n\nsummary\n")
        )


def test_a_command_imports_only_its_own_module(cozy_home: Path) -> None:
    others = [
        f"cozy.cli.{m}" for m in dict.fromkeys(COMMANDS.values()) if m not in (None, "knowledge")
    ]
    assert loaded("knowledge", "stats", heavy=others) == []
    assert loaded("keys", "--help", heavy=others) == ["cozy.cli.keys"]


def test_the_command_table_names_every_command_in_help_order() -> None:
    group = typer.main.get_command(app)
    assert isinstance(group, LazyCommands)
    group.load_all()
    assert sorted(group.commands) == sorted(COMMANDS)
    # typer lists plain commands before groups; the table keeps that order
    is_group = [isinstance(group.commands[name], TyperGroup) for name in COMMANDS]
    assert is_group == sorted(is_group)
