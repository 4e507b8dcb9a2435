"""Count import cycles inside the `cozy` package and print them.

    .venv/bin/python tools/import_cycles.py [--quiet]

A cycle group is a strongly connected component of more than one module in the
graph "module A imports module B". Three figures: every import (those under
`if TYPE_CHECKING:` too: a type-only import still ties two modules' designs
together), run-time imports (inside functions included: a lazy import still runs),
and module-level run-time imports (the ones that can break an import). The groups
listed are those of the first figure. Exit status 1 when any figure is above 0 (CI
runs this: a new cycle fails the build), else 0.

Own code rather than a library: grimp (under import-linter) builds the graph but
lists no cycles, and Tarjan's algorithm over `ast` is 60 lines.
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "cozy"


def modules(root: Path) -> dict[str, Path]:
    out: dict[str, Path] = {}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST, top_level: bool, typing: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    todo: list[ast.AST] = [tree]
    while todo:
        node = todo.pop()
        for child in ast.iter_child_nodes(node):
            if not typing and isinstance(child, ast.If) and _type_checking(child):
                todo.extend(child.orelse)
                continue
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child
            elif not (
                top_level
                and isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef)
            ):
                todo.append(child)


def graph(mods: dict[str, Path], *, top_level: bool, typing: bool) -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        for node in _imports(ast.parse(path.read_text()), top_level, typing):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:  # relative: resolve against this module's package
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join([*pkg, base] if base else pkg)
                targets = [f"{base}.{a.name}" for a in node.names] + [base]
            for target in targets:
                while target and target not in mods:  # `from pkg import name`: the package
                    target = target.rpartition(".")[0]
                if target and target != name and target.startswith(PACKAGE):
                    edges[name].add(target)
                    break  # the most specific module is the edge
    return edges


def cycle_groups(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    for start in edges:
        if start in index:
            continue
        work = [(start, iter(sorted(edges[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(edges[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quiet", action="store_true", help="the figures only")
    args = parser.parse_args(argv)
    mods = modules(ROOT)
    every = cycle_groups(graph(mods, top_level=False, typing=True))
    if not args.quiet:
        for group in every:
            print(f"  {len(group):>2} modules: {', '.join(group)}")
    run_time = cycle_groups(graph(mods, top_level=False, typing=False))
    top = cycle_groups(graph(mods, top_level=True, typing=False))
    print(f"import cycle groups in {PACKAGE}/: {len(every)} (every import)")
    print(f"  {len(run_time)} counting run-time imports only, {len(top)} module-level only")
    return 1 if every or run_time or top else 0


if __name__ == "__main__":
    sys.exit(main())
