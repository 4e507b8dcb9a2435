"""`cozy usage`: tokens per day, user and model from the saved answers (any face)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from helpers import write_engines

from cozy.testing import FakeModelServer

PRICES = "  prices:\n    'ollama:fake-model': {input: 2.0, output: 10.0}\n"  # $ per 1M


def cozy(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cozy", *args],
        input="",
        capture_output=True,
        text=True,
        timeout=60,
        env=dict(os.environ),
    )


def test_usage_per_day_and_model_for_the_local_cli(
    cozy_home: Path, fake_model: FakeModelServer
) -> None:
    write_engines(cozy_home, fake_model.url, PRICES)
    runs = [json.loads(cozy("run", "--json", f"question {i}").stdout) for i in range(2)]
    used = sum(r["usage"]["total_tokens"] for r in runs)
    out = cozy("usage", "--json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    mine = [r for r in rows if r["model"] == "ollama:fake-model"]
    assert len(mine) == 1 and mine[0]["day"] == today and mine[0]["user"] == "local"
    assert mine[0]["requests"] == 2 and mine[0]["total_tokens"] == used
    cost = (mine[0]["prompt_tokens"] * 2.0 + mine[0]["completion_tokens"] * 10.0) / 1e6
    assert mine[0]["usd"] == round(cost, 6) and cost > 0
    table = cozy("usage")
    assert "ollama:fake-model" in table.stdout and today in table.stdout
    assert json.loads(cozy("usage", "--user", "nobody", "--json").stdout) == []
