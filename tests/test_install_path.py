"""The README's first line, `./install.sh && cozy run "..."`, needs `cozy` on the PATH of
the shell that ran install.sh: checked in a fresh login shell (`env -i bash -lc`, so the
PATH is the system default) for a normal user and for root (install.sh --link-only: the
same linking step the full install ends with)."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_COZY = REPO / ".venv" / "bin" / "cozy"
LINE = './install.sh --link-only && command -v cozy && readlink "$(command -v cozy)"'


def fresh_shell(home: Path, *prefix: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*prefix, "env", "-i", f"HOME={home}", "bash", "-lc", f"cd {REPO} && {LINE}"],
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.fixture
def nobody_home() -> Iterator[Path]:
    """A new user's home as `useradd -m` makes it (Debian's skeleton ~/.profile), where
    that user can reach it (pytest's own tmp dirs are root's alone)."""
    home = Path(tempfile.mkdtemp(prefix="cozy-home-"))
    try:
        if Path("/etc/skel/.profile").is_file():
            shutil.copy("/etc/skel/.profile", home / ".profile")
        (home / ".local" / "bin").mkdir(parents=True)
        for p in [home, *home.rglob("*")]:
            os.chown(p, 65534, 65534)
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root")
def test_normal_user_gets_cozy_on_the_default_path(nobody_home: Path) -> None:
    drop = ("setpriv", "--reuid=65534", "--regid=65534", "--clear-groups")
    r = fresh_shell(nobody_home, *drop)
    assert r.returncode == 0, r.stderr + r.stdout
    lines = r.stdout.strip().splitlines()
    assert lines[-2] == f"{nobody_home}/.local/bin/cozy"  # on the login PATH (~/.profile)
    assert lines[-1] == str(VENV_COZY)
    assert "cozy is on your PATH" in r.stdout


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root")
def test_root_gets_cozy_on_the_default_path(tmp_path: Path) -> None:
    target = Path("/usr/local/bin/cozy")
    before = os.readlink(target) if target.is_symlink() else None
    try:
        r = fresh_shell(tmp_path)  # a home without ~/.local/bin: /usr/local/bin
        assert r.returncode == 0, r.stderr + r.stdout
        lines = r.stdout.strip().splitlines()
        assert lines[-2] == str(target) and lines[-1] == str(VENV_COZY)
    finally:  # leave the machine's link as it was
        if before is not None:
            target.unlink(missing_ok=True)
            target.symlink_to(before)
        elif target.is_symlink():
            target.unlink()


def test_link_only_needs_the_venv(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(REPO / "install.sh"), "--link-only"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COZY_VENV": str(tmp_path / "none")},
    )
    assert r.returncode == 1 and "run ./install.sh" in r.stderr
