"""Metric labels stay bounded whatever clients send: 1,000 random paths and models."""

from __future__ import annotations

import asyncio
import random
import re

import httpx
from server_fixtures import Served, served_fixture  # noqa: F401 - the fixture

# routes x methods x statuses, models x stream x status: a fixed ceiling, far below
# one series per request
SERIES_BOUND = 300


def series(text: str) -> dict[str, int]:
    """Series count per metric family in a Prometheus text exposition."""
    out: dict[str, int] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = re.split(r"[{ ]", line, maxsplit=1)[0]
            name = re.sub(r"_(bucket|count|sum|created)$", "", name)
            out[name] = out.get(name, 0) + 1
    return out


def test_labels_are_bounded_after_random_paths_and_models(served: Served) -> None:
    rng = random.Random(21)

    async def go() -> None:
        limits = httpx.Limits(max_connections=16)
        async with httpx.AsyncClient(
            base_url=served.url, headers=served.headers("root"), limits=limits, timeout=120
        ) as c:
            sem = asyncio.Semaphore(16)

            async def path(i: int) -> None:
                method = rng.choice(["GET", "POST", "DELETE", "BREW", "PROPFIND"])
                p = rng.choice(["/v1/", "/", "/v1/chat/sessions/", "/schema/"])
                async with sem:
                    await c.request(method, f"{p}{rng.getrandbits(64):x}/{i}")

            async def model(i: int) -> None:
                name = rng.choice([f"cozy/p{i}", f"m-{i}:{rng.getrandbits(32):x}", f"zz{i}"])
                body = {"model": name, "messages": [{"role": "user", "content": "hi"}]}
                async with sem:
                    await c.post("/v1/chat/completions", json=body)

            await asyncio.gather(*(path(i) for i in range(1000)))
            await asyncio.gather(*(model(i) for i in range(1000)))

    asyncio.run(go())
    text = httpx.get(served.url + "/metrics", headers=served.headers("root"), timeout=60).text
    counts = series(text)
    assert counts["http_requests_total"] < 60, counts
    assert counts["chat_requests_total"] < 12, counts
    assert sum(counts.values()) < SERIES_BOUND, counts
    assert 'route="other"' in text and 'model="other"' in text
    # the real routes are there as templates, not as raw paths
    assert 'route="/v1/chat/completions"' in text
    assert not re.search(r'route="[^"]*[0-9a-f]{12}', text)
