"""Run the WebRTC test inside `.venv-webrtc` (fastrtc pins older shared libraries).

`./install.sh --dev` builds that venv; this test runs `tests/test_webrtc.py` there as a
subprocess (a real aiortc peer against `cozy serve --webrtc`). In CI a missing venv is
a failure, locally a skip that names the command to build it.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
WEBRTC_PY = ROOT / ".venv-webrtc" / "bin" / "python"


@pytest.mark.timeout(300)
def test_webrtc_in_its_own_venv() -> None:
    if not WEBRTC_PY.exists():
        if os.environ.get("CI"):
            pytest.fail("no .venv-webrtc: ./install.sh --dev should have built it")
        pytest.skip("no .venv-webrtc: build it with `./install.sh --dev`")
    proc = subprocess.run(
        [
            str(WEBRTC_PY),
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            str(ROOT / "tests" / "test_webrtc.py"),
        ],
        capture_output=True,
        text=True,
        timeout=280,
        cwd=ROOT,
    )
    tail = (proc.stdout + proc.stderr)[-3000:]
    assert proc.returncode == 0, tail
    assert " passed" in proc.stdout and "skipped" not in proc.stdout, tail
