"""Is a server alive: what its death says, and whether one whose call timed out is hung.

After a timed-out call one ping runs in the background (off the caller's clock): no
answer within 2 s marks the server hung and dead, so it is killed at once and
restarted on next use. Health waits for a ping in flight, and a hung server that
answers again (a paused process resumed) is healthy again without a restart.

The functions take an MCPServerConnection (mcp_client), whose lifecycle they read
and mark; typed loosely here so the two modules do not import each other.
"""

from __future__ import annotations

import asyncio
from typing import Any

from cozy.engines.tools.mcp_common import describe, ended

PING_WITHIN = 2.0  # seconds a live server takes to answer a ping, however busy


async def death_reason(conn: Any) -> str:
    """Why the connection closed during a call, for the model and the user."""
    tail = conn.process.stderr_tail()
    if conn.cfg.transport != "stdio":
        gone = "the server went away"
    else:
        # the launcher writes how the server ended right after reaping it
        record = None
        for _ in range(40):
            record = conn.exit_record()
            if record:
                break
            await asyncio.sleep(0.025)
        gone = ended(record, conn.cfg.name)
    base = f"closed the connection during the call ({gone})"
    return f"{base}; its stderr ends with: {tail}" if tail else base


def probe_soon(conn: Any) -> None:
    """One ping at a time, off the caller's clock."""
    if conn._probing is None or conn._probing.done():
        conn._probing = asyncio.create_task(probe(conn), name=f"mcp-ping:{conn.cfg.name}")


async def probe(conn: Any) -> None:
    """After a timeout: if the server no longer answers a ping, restart it next time."""
    session = conn._session
    if session is None:
        return
    try:
        async with asyncio.timeout(PING_WITHIN):
            await session.send_ping()
    except Exception as exc:
        if session is conn._session:  # not a session started since
            conn._hung = True
            conn.mark_dead(f"stopped answering after a timed-out call ({describe(exc)})")


async def probed(conn: Any) -> None:
    """Wait (bounded by the ping's own 2 s) for a ping in flight: health then says
    whether a server whose call just timed out is hung, not what it was before."""
    probing = conn._probing
    if probing is not None and not probing.done():
        await asyncio.wait({probing}, timeout=PING_WITHIN + 0.5)
        return
    session = conn._session
    if not conn._hung or session is None or conn._runner is None or conn._runner.done():
        return
    # hung before: a server that answers again (a paused process resumed) is healthy
    # again without waiting for a call to restart it
    try:
        async with asyncio.timeout(PING_WITHIN):
            await session.send_ping()
    except Exception:  # still hung: it is restarted on next use
        return
    if session is conn._session and conn._hung:
        conn._hung, conn._dead = False, None
        conn.status.state = "running"
