"""ScopeVersions in local mode (no Redis): `local_ttl` bounds how stale another
process's write may look; this instance's own writes are seen at once."""

from __future__ import annotations

import asyncio

from cozy.storage.scope_versions import ScopeVersions


async def test_local_ttl_own_writes_at_once_others_within_ttl() -> None:
    db = {"u": 1}  # the DB counter another process may bump

    async def read(scope: str) -> int:
        return db[scope]

    versions = ScopeVersions("knowledge", read, local_ttl=2.0)
    assert await versions.get("u") == 1
    db["u"] = 2  # another process wrote: trusted cache for up to local_ttl
    assert await versions.get("u") == 1
    assert versions.db_reads == 1
    await versions.publish(["u"])  # our own write: seen at once
    assert await versions.get("u") == 2
    db["u"] = 3
    await asyncio.sleep(2.1)
    assert await versions.get("u") == 3  # the other process's write, after local_ttl
    assert versions.db_reads == 3


async def test_without_local_ttl_every_read_goes_to_the_db() -> None:
    db = {"u": 1}

    async def read(scope: str) -> int:
        return db[scope]

    versions = ScopeVersions("memory", read)
    assert await versions.get("u") == 1
    db["u"] = 5
    assert await versions.get("u") == 5
    assert versions.db_reads == 2
