"""The `/v1/audio/stt` WebSocket loop: frames are read while utterances are transcribed.

Reading and transcribing are two tasks joined by a queue. With one loop, a Whisper
decode (seconds on a loaded CPU) stopped the reads: the socket's frame queue filled,
the client's pong sat unread behind the audio, and the connection died of a keepalive
timeout. The queue is capped (MAX_BACKLOG_S of audio) so a client that sends faster
than the recogniser can follow gets an error, not unbounded memory.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, cast

from litestar import WebSocket

from cozy.core.errors import EngineError, UsageError

MAX_BACKLOG_S = 120.0
END_MESSAGES = ("end", '{"type":"end"}')


async def serve(socket: WebSocket[Any, Any, Any], session: Any, rate: int) -> None:
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    backlog = [0]  # bytes waiting in the queue
    limit = int(MAX_BACKLOG_S * rate * 2)

    async def transcribe() -> None:
        while (chunk := await _next_chunk(queue, session, socket)) is not None:
            backlog[0] -= len(chunk)
            for event in await session.feed(chunk):
                await socket.send_json(event.to_dict())
        for event in await session.finish():
            await socket.send_json(event.to_dict())
        await socket.send_json({"type": "done"})

    worker = asyncio.create_task(transcribe())
    try:
        while not worker.done():
            receive = asyncio.ensure_future(socket.receive())
            await asyncio.wait({receive, worker}, return_when=asyncio.FIRST_COMPLETED)
            if not receive.done():
                receive.cancel()
                break  # the worker ended (an error): stop reading
            message = cast(dict[str, Any], receive.result())
            if message.get("type") == "websocket.disconnect":
                return
            if message.get("bytes"):
                backlog[0] += len(message["bytes"])
                if backlog[0] > limit:
                    raise UsageError(
                        f"more than {MAX_BACKLOG_S:.0f} s of audio is waiting to be transcribed",
                        hint="send audio in real time (or use POST /v1/audio/transcriptions)",
                    )
                queue.put_nowait(message["bytes"])
            elif (message.get("text") or "").strip().lower() in END_MESSAGES:
                queue.put_nowait(None)
                await worker
                await socket.close()
                return
        await worker  # re-raise the worker's error
    except (UsageError, EngineError) as exc:
        with contextlib.suppress(Exception):
            await socket.send_json({"type": "error", "message": str(exc)})
            await socket.close(code=1003)
    finally:
        if not worker.done():
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await worker


async def _next_chunk(
    queue: asyncio.Queue[bytes | None], session: Any, socket: WebSocket[Any, Any, Any]
) -> bytes | None:
    """The next chunk; meanwhile a finished partial transcript is sent at once
    (Whisper's partials are decoded in the background, not on a chunk's arrival)."""
    while True:
        partial = getattr(session, "partial_pending", None)
        if partial is None or queue.qsize():
            return await queue.get()
        getter = asyncio.ensure_future(queue.get())
        await asyncio.wait({getter, partial}, return_when=asyncio.FIRST_COMPLETED)
        if getter.done():
            return getter.result()
        getter.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await getter
        for event in session.poll():
            await socket.send_json(event.to_dict())
