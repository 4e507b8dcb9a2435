"""Deployment operations behind `cozy migrate` (SQLite and Postgres alike).

The CLI calls these; they own the SQL. `status` never changes the database;
`upgrade` applies the pending steps (each in its own transaction, see
`migrations`) and refuses a database written by a newer cozy.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.exc import DBAPIError, OperationalError

from cozy.core.errors import CozyError
from cozy.storage import db, migrations, pg_schema


def where(url: str) -> str:
    """The URL without credentials, for messages."""
    from cozy.storage.redis_cache import redact

    return redact(url)


async def status(url: str) -> dict[str, Any]:
    engine = db.create_engine(url, pool_size=1, max_overflow=0)
    try:
        async with engine.connect() as conn:
            report: dict[str, Any] = dict(await conn.run_sync(migrations.status))
            report["vectors"] = await conn.run_sync(pg_schema.vector_path)
            report["dialect"] = conn.dialect.name
    except (OperationalError, DBAPIError, OSError) as exc:
        raise db.translate(exc, url) from exc
    finally:
        await engine.dispose()
    report["database"] = where(url)
    report["newer"] = bool(report["unknown"])
    return report


async def upgrade(url: str) -> dict[str, Any]:
    engine = db.create_engine(url, pool_size=1, max_overflow=0)
    try:
        ran = await db.with_retry(lambda: migrations.upgrade(engine))
    except (OperationalError, DBAPIError, OSError) as exc:
        raise db.translate(exc, url) from exc
    finally:
        await engine.dispose()
    report = await status(url)
    report["ran"] = ran
    return report


async def preflight(db_url: str, redis_url: str | None) -> None:
    """Before serving: the database answers and is not newer; Redis answers (if set).

    Raises StorageError / StorageUnavailable naming the URL, so `cozy serve` can
    exit with one clear line instead of a start-up traceback.
    """
    import asyncio

    engine = db.create_engine(db_url, pool_size=1, max_overflow=0)
    try:
        async with asyncio.timeout(15), engine.connect() as conn:
            done = await conn.run_sync(migrations.applied)
        migrations.check_not_newer(done)
    except TimeoutError as exc:
        raise db.translate(OSError(f"no answer from {where(db_url)} in 15s"), db_url) from exc
    except (OperationalError, DBAPIError, OSError) as exc:
        raise db.translate(exc, db_url) from exc
    finally:
        await engine.dispose()
    if redis_url:
        from cozy.storage.redis_cache import RedisLink

        link = RedisLink(redis_url, pool_size=1, timeout=5)
        try:
            await link.ping()
        finally:
            await link.close()


async def deployment_checks(db_url: str, redis_url: str | None) -> list[dict[str, str]]:
    """`cozy doctor` lines: which vector path the database gets, and Redis (if set)."""
    out: list[dict[str, str]] = []
    try:
        vectors = (await status(db_url))["vectors"]
        out.append(
            {"name": "vectors", "status": "ok", "detail": f"{vectors['path']}: {vectors['detail']}"}
        )
    except CozyError as exc:
        out.append({"name": "vectors", "status": "fail", "detail": str(exc), "fix": exc.hint or ""})
    if redis_url:
        from cozy.storage.redis_cache import RedisLink

        link = RedisLink(redis_url, pool_size=1, timeout=2)
        try:
            ok, detail = await link.status()
        finally:
            await link.close()
        fix = "" if ok else "start Redis or fix COZY_REDIS_URL (unset it to run without Redis)"
        out.append(
            {"name": "redis", "status": "ok" if ok else "warn", "detail": detail, "fix": fix}
        )
    return out
