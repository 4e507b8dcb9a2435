"""Launcher that sandboxes an MCP stdio server, then execs it.

    python -I -S _limits.py [--cpu SECONDS] [--mem MB] [--keep VAR,VAR]
                            [--pidfile PATH] [--cwd DIR] -- command args...

Stdlib only (it runs with -I -S, without cozy on the path). Steps, in order:
set RLIMIT_CPU / RLIMIT_AS, ask Linux to SIGTERM the server when cozy dies
(PR_SET_PDEATHSIG), keep only the listed environment variables, write our pid,
change directory, and exec the command (the pid stays the same).
"""

from __future__ import annotations

import os
import shutil
import sys

_PR_SET_PDEATHSIG = 1


def _parse(argv: list[str]) -> tuple[dict[str, str], list[str]]:
    opts: dict[str, str] = {}
    i = 0
    while i < len(argv):
        arg = argv[i]
        if arg == "--":
            return opts, argv[i + 1 :]
        if arg.startswith("--") and i + 1 < len(argv):
            opts[arg[2:]] = argv[i + 1]
            i += 2
            continue
        raise SystemExit(f"cozy sandbox: unexpected argument {arg!r}")
    return opts, []


def _set_limits(cpu: int, mem_mb: int) -> None:
    import resource

    if cpu > 0:
        resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    if mem_mb > 0:
        size = mem_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (size, size))


def _die_with_parent(parent: int) -> None:
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes
        import signal

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    except Exception:
        return
    if os.getppid() != parent:  # cozy died before prctl took effect
        raise SystemExit(1)


def main(argv: list[str]) -> int:
    opts, cmd = _parse(argv)
    if not cmd:
        print("cozy sandbox: no command given", file=sys.stderr)
        return 2
    parent = os.getppid()
    _set_limits(int(opts.get("cpu", "0") or 0), int(opts.get("mem", "0") or 0))
    _die_with_parent(parent)
    keep = {k for k in opts.get("keep", "").split(",") if k}
    env = {k: v for k, v in os.environ.items() if k in keep}
    if "cwd" in opts:
        os.chdir(opts["cwd"])
    exe = cmd[0] if os.sep in cmd[0] else shutil.which(cmd[0], path=env.get("PATH", ""))
    if exe is None:
        print(f"cozy sandbox: command not found: {cmd[0]}", file=sys.stderr)
        return 127
    if "pidfile" in opts:
        with open(opts["pidfile"], "w") as fh:
            fh.write(str(os.getpid()))
    try:
        os.execve(exe, cmd, env)
    except OSError as exc:
        print(f"cozy sandbox: cannot run {cmd[0]}: {exc}", file=sys.stderr)
        return 126
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
