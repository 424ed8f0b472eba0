"""Answers written as they are made (the CSV exports): chunk by chunk, each flushed to the client."""
from __future__ import annotations

import logging

log = logging.getLogger("gym.http")


async def stream(handler, chunks):
    """Write the text chunks of an async iterator as they come, flushing each, then finish. A failure before the
    first chunk is raised (the handler answers its error); one half way cuts the connection, so that a truncated
    file never looks complete."""
    started = False
    try:
        async for chunk in chunks:
            handler.write(chunk.encode("utf-8"))
            await handler.flush()
            started = True
    except Exception:
        if not started:
            raise
        log.exception("%s failed after it started streaming; connection closed", handler.request.path)
        handler.request.connection.close()
        return
    handler.finish()
