"""Answers written as they are made (the CSV exports): chunk by chunk, each flushed to the client."""
from __future__ import annotations

import logging

from tornado.iostream import StreamClosedError

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
    except StreamClosedError:
        # The client hung up half way (a closed tab, a cancelled download): nothing of ours failed.
        log.info("%s: the client closed the connection before the end of the file", handler.request.path)
        return
    except Exception:
        if not started:
            raise
        log.exception("%s failed after it started streaming; connection closed", handler.request.path)
        handler.request.connection.close()
        return
    finally:
        aclose = getattr(chunks, "aclose", None)
        if aclose is not None:
            await aclose()  # the generator's database cursor and connection go back at once
    handler.finish()
