"""`cozy tools import-claude-config`: merge Claude Desktop's `mcpServers` into an
engines.yaml, keeping everything else.

Only the top-level `tools:` block is rewritten; every other line of the file (other
sections, their comments) stays byte for byte. The result is validated with the
same loader cozy uses before it replaces the file (atomically, old file kept as
`.bak`), so a bad merge never leaves a broken config behind.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer

from cozy.cli._common import console, print_json, run_async, state

_REPLACEABLE = ("builtin", "none", "")


def _tools_span(text: str) -> tuple[int, int] | None:
    """(first line, end line) of the top-level `tools:` block, 0-based, end exclusive."""
    import yaml

    node = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(node, yaml.MappingNode):
        return None
    keys = [k for k, _ in node.value]
    for i, key in enumerate(keys):
        if key.value != "tools":
            continue
        start = key.start_mark.line
        lines = text.splitlines()
        end = keys[i + 1].start_mark.line if i + 1 < len(keys) else len(lines)
        while end > start + 1 and (not lines[end - 1].strip() or lines[end - 1].startswith("#")):
            end -= 1  # comments and blank lines before the next section belong to it
        return start, end
    return None


def _dump(tools: dict[str, Any]) -> str:
    import yaml

    return yaml.safe_dump({"tools": tools}, sort_keys=False, default_flow_style=False, width=100)


def merge_servers(source: Path, target: Path, packaged: Path, *, write: bool) -> dict[str, Any]:
    """Merge `source`'s servers into `target`. Returns what changed (and the YAML block)."""
    import yaml

    from cozy.core.errors import ConfigError
    from cozy.engines.config import load_engines_config
    from cozy.engines.tools.mcp_config import RESERVED, import_claude_config

    renames: dict[str, str] = {}
    imported = import_claude_config(source, renames)
    text = target.read_text(encoding="utf-8") if target.is_file() else ""
    try:
        data = yaml.safe_load(text) if text.strip() else {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"{target}: not valid YAML ({exc})", hint="fix it first") from exc
    if not isinstance(data, dict):
        raise ConfigError(f"{target}: the top level must be a mapping of engine sections")
    tools = dict(data.get("tools") or {})
    if str(tools.get("provider") or "") in _REPLACEABLE:
        tools["provider"] = "mcp"
    elif tools.get("provider") != "mcp":
        raise ConfigError(
            f"{target}: tools.provider is '{tools['provider']}', not mcp",
            hint="set `tools: {provider: mcp}` to use MCP servers, then import again",
        )
    servers = dict(tools.get("servers") or {})
    added = [n for n in imported if n not in servers]
    updated = [n for n in imported if n in servers and servers[n] != imported[n]]
    servers.update(imported)
    tools["servers"] = servers
    block = _dump(tools)
    lines = text.splitlines(keepends=True)
    span = _tools_span(text) if text.strip() else None
    if span is None:
        sep = "" if not text or text.endswith("\n\n") else ("\n" if text.endswith("\n") else "\n\n")
        new_text = text + sep + block
    else:
        new_text = "".join(lines[: span[0]]) + block + "".join(lines[span[1] :])
    report: dict[str, Any] = {
        "target": str(target),
        "added": added,
        "renamed": {
            old: (
                new,
                "reserved for cozy's built-in tools"
                if old.lower() in RESERVED
                else "only letters, digits, '_' and '-'",
            )
            for old, new in renames.items()
        },
        "updated": updated,
        "servers": sorted(servers),
        "yaml": block,
        "written": False,
        "backup": None,
    }
    if not write:
        return report
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".engines-", suffix=".yaml", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(new_text)
        try:  # refuse to write a config cozy cannot load
            load_engines_config([packaged, tmp])
        except ConfigError as exc:
            raise ConfigError(
                str(exc).replace(str(tmp), str(target)),
                hint=f"nothing was written; fix {source} or {target} and import again",
            ) from exc
        if target.is_file():
            backup = target.with_name(target.name + ".bak")
            shutil.copy2(target, backup)
            report["backup"] = str(backup)
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    report["written"] = True
    return report


def import_cmd(
    path: Annotated[Path, typer.Argument(help="claude_desktop_config.json")],
    write: Annotated[
        bool, typer.Option("--write", help="merge into your engines.yaml (else just print)")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="JSON on stdout")] = False,
) -> None:
    """Bring Claude Desktop's mcpServers into engines.yaml (other sections are kept)."""

    async def go() -> None:
        settings = state.settings()
        target = settings.config or settings.user_engines_file
        report = merge_servers(path, target, settings.packaged_engines_file, write=write)
        if as_json:
            print_json(report)
            return
        out = console()
        for old, (new, why) in report.get("renamed", {}).items():
            console(stderr=True).print(
                f"note: server '{old}' imported as '{new}' ({why}); its tools are {new}.*"
            )
        if not write:
            sys.stdout.write(report["yaml"])
            out.print(f"\n(dry run: pass --write to merge this into {target})")
            return
        added, updated = report["added"], report["updated"]
        out.print(
            f"wrote {target}: {len(added)} added ({', '.join(added) or '-'}), "
            f"{len(updated)} updated ({', '.join(updated) or '-'})"
        )
        if report.get("backup"):
            out.print(f"previous file kept as {report['backup']}")
        out.print("check them with `cozy tools servers`")

    run_async(go, as_json=as_json)


def register_config(app: typer.Typer) -> None:
    app.command("import-claude-config")(import_cmd)
