"""The README's first line, run verbatim (read from README.md) in a fresh login shell
(`env -i bash -lc`: the system's default PATH, nothing inherited) in a fresh copy of
this checkout: a full install, then a real answer from the embedded model; as root and
as a normal user (uid 65534 with a new home), for whom `cozy` is then on PATH from the
next login. Plus the linking step alone (`install.sh --link-only`)."""

from __future__ import annotations

import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
VENV_COZY = REPO / ".venv" / "bin" / "cozy"
LINK_LINE = './install.sh --link-only && command -v cozy && readlink "$(command -v cozy)"'
NOBODY = 65534
ROOT_LINK = Path("/usr/local/bin/cozy")

needs_root = pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("setpriv"), reason="needs root (CI runs as root)"
)


def readme_first_line() -> str:
    """The first command of the README's first bash block, as printed (its comment cut)."""
    text = (REPO / "README.md").read_text(encoding="utf-8")
    block = text.split("```bash\n", 1)[1].split("```", 1)[0]
    return re.sub(r"\s+#\s.*$", "", block.splitlines()[0]).strip()


def login_shell(
    home: Path, cwd: Path, line: str, *prefix: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """`line` in a fresh login shell: only HOME (and `env`) set; bash -l reads the
    system's and the user's profile, so PATH is the default one a login gets."""
    extra = [f"{k}={v}" for k, v in (env or {}).items()]
    return subprocess.run(
        [*prefix, "env", "-i", f"HOME={home}", *extra, "bash", "-lc", f"cd {cwd} && {line}"],
        capture_output=True,
        text=True,
        timeout=1800,  # a full install on a loaded 2-core machine
    )


def assert_answered(r: subprocess.CompletedProcess[str]) -> None:
    """The embedded model answered after the install (its words vary: the default
    temperature samples; "4" at temperature 0 is tests/test_local_model.py's)."""
    answer = r.stdout.split("==> done.", 1)[-1].split("\n", 1)[-1]
    assert answer.strip(), r.stdout[-2000:]
    assert "bundled 135M model" in r.stdout + r.stderr  # the first answer's notice


def new_home(owner: int) -> Path:
    """A new user's home as `useradd -m` makes it (the skeleton's ~/.profile, no
    ~/.local/bin yet), where that user can reach it (pytest's tmp dirs are root's)."""
    home = Path(tempfile.mkdtemp(prefix="cozy-home-"))
    for name in (".profile", ".bashrc"):
        if Path("/etc/skel", name).is_file():
            shutil.copy(Path("/etc/skel", name), home / name)
    for p in [home, *home.rglob("*")]:
        os.chown(p, owner, owner)
    return home


@pytest.fixture
def keep_root_link() -> Iterator[None]:
    """Leave the machine's /usr/local/bin/cozy as it was."""
    before = os.readlink(ROOT_LINK) if ROOT_LINK.is_symlink() else None
    try:
        yield
    finally:
        if before is not None:
            ROOT_LINK.unlink(missing_ok=True)
            ROOT_LINK.symlink_to(before)
        elif ROOT_LINK.is_symlink():
            ROOT_LINK.unlink()


def copy_checkout() -> Path:
    """A copy of this checkout's files (tracked and new, not ignored), without a venv."""
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    dest = Path(tempfile.mkdtemp(prefix="cozy-clone-"))
    for name in filter(None, (f.decode() for f in files)):
        src = REPO / name
        if src.is_file() and not src.is_symlink():
            (dest / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / name)
    dest.chmod(0o755)
    return dest


@pytest.fixture
def checkout() -> Iterator[Path]:
    dest = copy_checkout()
    try:
        yield dest
    finally:
        shutil.rmtree(dest, ignore_errors=True)


def test_readme_first_line_is_the_one_tested() -> None:
    line = readme_first_line()
    assert line.startswith("./install.sh && ") and 'run "What is 2+2?"' in line, line


@needs_root
def test_readme_first_line_verbatim_as_root(checkout: Path, keep_root_link: None) -> None:
    home = Path(pwd.getpwuid(0).pw_dir)  # root's own: its uv cache and llama.cpp wheel
    data = Path(tempfile.mkdtemp(prefix="cozy-data-"))
    try:
        r = login_shell(home, checkout, readme_first_line(), env={"COZY_HOME": str(data)})
    finally:
        shutil.rmtree(data, ignore_errors=True)
    assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
    assert_answered(r)
    assert "FAILED" not in r.stderr, r.stderr[-3000:]
    assert f"cozy is on your PATH ({ROOT_LINK})" in r.stdout
    assert os.readlink(ROOT_LINK) == str(checkout / ".venv" / "bin" / "cozy")


@needs_root
def test_readme_first_line_verbatim_as_a_normal_user(checkout: Path) -> None:
    """A normal user's own copy and a new home (its own uv cache: packages come from the
    index), then a new login finds `cozy` on PATH. The llama.cpp wheel root built is
    copied into that user's cache, as a second clone on one machine finds it."""
    home = new_home(NOBODY)
    wheels = Path(pwd.getpwuid(0).pw_dir, ".cache", "cozy", "wheels")
    if wheels.is_dir():
        shutil.copytree(wheels, home / ".cache" / "cozy" / "wheels")
    for path in (checkout, home):
        subprocess.run(["chown", "-hR", f"{NOBODY}:{NOBODY}", str(path)], check=True)
    drop = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    try:
        r = login_shell(home, checkout, readme_first_line(), *drop)
        assert r.returncode == 0, r.stderr[-3000:] + r.stdout[-3000:]
        assert_answered(r)
        assert "FAILED" not in r.stderr, r.stderr[-3000:]
        assert f"linked {home}/.local/bin/cozy" in r.stdout
        later = login_shell(home, checkout, "command -v cozy && cozy --version", *drop)
        assert later.returncode == 0, later.stderr
        assert later.stdout.splitlines()[0] == f"{home}/.local/bin/cozy"
    finally:
        shutil.rmtree(home, ignore_errors=True)


# -- the linking step alone ----------------------------------------------------------------
@pytest.fixture
def nobody_home() -> Iterator[Path]:
    home = new_home(NOBODY)
    (home / ".local" / "bin").mkdir(parents=True)
    for p in [home / ".local", home / ".local" / "bin"]:
        os.chown(p, NOBODY, NOBODY)
    try:
        yield home
    finally:
        shutil.rmtree(home, ignore_errors=True)


@needs_root
def test_link_only_uses_a_directory_already_on_the_login_path(nobody_home: Path) -> None:
    drop = ("setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups")
    r = login_shell(nobody_home, REPO, LINK_LINE, *drop)
    assert r.returncode == 0, r.stderr + r.stdout
    lines = r.stdout.strip().splitlines()
    assert lines[-2] == f"{nobody_home}/.local/bin/cozy"  # on the login PATH (~/.profile)
    assert lines[-1] == str(VENV_COZY)
    assert "cozy is on your PATH" in r.stdout


@needs_root
def test_link_only_as_root_uses_usr_local_bin(tmp_path: Path, keep_root_link: None) -> None:
    r = login_shell(tmp_path, REPO, LINK_LINE)  # a home without ~/.local/bin
    assert r.returncode == 0, r.stderr + r.stdout
    lines = r.stdout.strip().splitlines()
    assert lines[-2] == str(ROOT_LINK) and lines[-1] == str(VENV_COZY)


def test_link_only_needs_the_venv(tmp_path: Path) -> None:
    r = subprocess.run(
        ["bash", str(REPO / "install.sh"), "--link-only"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "COZY_VENV": str(tmp_path / "none")},
    )
    assert r.returncode == 1 and "run ./install.sh" in r.stderr
