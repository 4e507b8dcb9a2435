"""Launcher that sandboxes an MCP stdio server and supervises it.

    python -I -S _limits.py [--cpu SECONDS] [--mem MB] [--keep VAR,VAR]
                            [--pidfile PATH] [--cwd DIR] -- command args...

Stdlib only (it runs with -I -S, without cozy on the path). The SDK starts it in a new
session, so this process leads the server's process group. It sets RLIMIT_CPU /
RLIMIT_AS (inherited by the server) and no core files, becomes a child subreaper,
asks Linux to signal it when cozy dies (PR_SET_PDEATHSIG), forks the server with only
the listed environment variables, and waits for it.

Why a supervisor that stays rather than an exec: the parent-death signal is cleared on
fork, so on an exec'd `npx` it reached npx but not the node process npx starts, and
after a SIGKILL of cozy that node server lived on under PID 1. Staying costs one small
idle process per server and buys three things: when cozy dies (or asks us to stop) we
end the whole tree, including descendants that left the group, since as subreaper they
are reparented to us; when the server exits, what it left behind goes with it; and we
see how it ended (with its CPU time, from wait4), written to `<pidfile>.exit` so cozy
can say "killed for exceeding its CPU limit" instead of "died". tini -s -p does the
first part too, but it is a system binary cozy cannot count on.

The pidfile gets "<our pid> <server pid>"; our pid is the process group id to kill.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import sys
import time

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_GRACE = 2.0  # SIGTERM to the tree, then SIGKILL after this many seconds


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
    # a server killed by SIGXCPU/SIGSEGV should not leave a core file in its cwd
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


def _prctl(option: int, value: int) -> bool:
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return int(libc.prctl(option, value, 0, 0, 0)) == 0
    except Exception:
        return False


# -- the process tree -------------------------------------------------------------


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tasks:
        try:
            with open(f"/proc/{pid}/task/{tid}/children") as fh:
                out.extend(int(p) for p in fh.read().split())
        except (OSError, ValueError):
            continue
    return out


def _group_members(pgid: int) -> list[int]:
    out: list[int] = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid):
            out.append(int(entry))
    return out


def _tree() -> set[int]:
    """Our descendants and our process group, without us."""
    me = os.getpid()
    seen: set[int] = set()
    todo = _children(me)
    while todo:
        pid = todo.pop()
        if pid not in seen:
            seen.add(pid)
            todo.extend(_children(pid))
    seen.update(_group_members(me))
    seen.discard(me)
    return seen


def _signal_tree(signum: int) -> None:
    for pid in _tree():
        with contextlib.suppress(OSError):
            os.kill(pid, signum)


def _reap_rest(deadline: float) -> None:
    """Kill and reap what the server left behind (bounded: a process stuck in the
    kernel is left to init rather than holding cozy's shutdown)."""
    while time.monotonic() < deadline:
        _signal_tree(signal.SIGKILL)
        try:
            while os.waitpid(-1, os.WNOHANG)[0]:
                pass
        except ChildProcessError:
            return
        time.sleep(0.02)


# -- supervising --------------------------------------------------------------------


class _Supervisor:
    def __init__(self) -> None:
        self.stopping = False

    def stop(self, signum: int, frame: object) -> None:
        """cozy died (PR_SET_PDEATHSIG) or asked us to stop: SIGTERM the tree, SIGKILL
        what is left after the grace period (SIGALRM)."""
        if not self.stopping:
            self.stopping = True
            signal.signal(signal.SIGALRM, self.kill)
            signal.setitimer(signal.ITIMER_REAL, _GRACE)
        _signal_tree(signal.SIGTERM)

    def kill(self, signum: int, frame: object) -> None:
        _signal_tree(signal.SIGKILL)


def _describe(status: int, cpu: float, cpu_limit: int) -> tuple[str, int]:
    """What cozy shows (`<pidfile>.exit`) and our own exit code."""
    if os.WIFSIGNALED(status):
        sig = os.WTERMSIG(status)
        name = signal.Signals(sig).name if sig in signal.valid_signals() else str(sig)
        text = f"signal {name} cpu {cpu:.2f}"
        if cpu_limit > 0 and (
            sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu >= cpu_limit)
        ):
            text += f" cpu_limit {cpu_limit}"
        return text, 128 + sig
    code = os.WEXITSTATUS(status) if os.WIFEXITED(status) else 1
    return f"exit {code} cpu {cpu:.2f}", code


def _supervise(
    exe: str, cmd: list[str], env: dict[str, str], opts: dict[str, str], parent: int
) -> int:
    sup = _Supervisor()
    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(signum, sup.stop)
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_PDEATHSIG, int(signal.SIGTERM))
    if os.getppid() != parent:  # cozy died before prctl took effect
        return 1
    server = os.fork()
    if server == 0:  # the server: default signals, our limits, then exec
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
            signal.signal(signum, signal.SIG_DFL)
        try:
            os.execve(exe, cmd, env)
        except OSError as exc:
            print(f"cozy sandbox: cannot run {cmd[0]}: {exc}", file=sys.stderr, flush=True)
        os._exit(126)
    # the server alone holds cozy's stdin/stdout: its exit (and its children's) is EOF
    null = os.open(os.devnull, os.O_RDWR)
    os.dup2(null, 0)
    os.dup2(null, 1)
    os.close(null)
    pidfile = opts.get("pidfile")
    if pidfile:
        with open(pidfile, "w") as fh:
            fh.write(f"{os.getpid()} {server}")
    while True:
        try:
            pid, status, usage = os.wait4(-1, 0)
        except ChildProcessError:
            return 1
        if pid == server:
            break  # orphans reparented to us are reaped on the way
    cpu = usage.ru_utime + usage.ru_stime
    text, code = _describe(status, cpu, int(opts.get("cpu", "0") or 0))
    if pidfile:
        with contextlib.suppress(OSError), open(pidfile + ".exit", "w") as fh:
            fh.write(text)
    _reap_rest(time.monotonic() + _GRACE)
    return code


def main(argv: list[str]) -> int:
    opts, cmd = _parse(argv)
    if not cmd:
        print("cozy sandbox: no command given", file=sys.stderr)
        return 2
    parent = os.getppid()
    _set_limits(int(opts.get("cpu", "0") or 0), int(opts.get("mem", "0") or 0))
    keep = {k for k in opts.get("keep", "").split(",") if k}
    env = {k: v for k, v in os.environ.items() if k in keep}
    if "cwd" in opts:
        os.chdir(opts["cwd"])
    exe = cmd[0] if os.sep in cmd[0] else shutil.which(cmd[0], path=env.get("PATH", ""))
    if exe is None:
        print(f"cozy sandbox: command not found: {cmd[0]}", file=sys.stderr)
        return 127
    if sys.platform.startswith("linux"):
        return _supervise(exe, cmd, env, opts, parent)
    # elsewhere: no /proc, no prctl; exec in place (cozy's own exit handlers kill the group)
    if "pidfile" in opts:
        with open(opts["pidfile"], "w") as fh:
            fh.write(f"{os.getpid()} {os.getpid()}")
    try:
        os.execve(exe, cmd, env)
    except OSError as exc:
        print(f"cozy sandbox: cannot run {cmd[0]}: {exc}", file=sys.stderr)
        return 126
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
