"""CPU-bound work off the event loop, bounded: a few threads of its own and a cap on the work admitted at once, so a
flood gets a quick refusal instead of a queue that holds everyone behind it."""
from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor


class BoundedThreads:
    """`threads` threads; at most `admitted` calls running or waiting; beyond, `refuse()` is raised at once."""

    def __init__(self, name: str, threads: int, admitted: int, refuse):
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix=name)
        self.admitted = admitted
        self._refuse = refuse
        self._lock = threading.Lock()
        self._busy = 0  # admitted and not finished (a call whose caller went away counts until it ends)

    def _finished(self, _future):
        with self._lock:
            self._busy -= 1

    async def run(self, fn, *args):
        """fn(*args) in the threads."""
        with self._lock:
            if self._busy >= self.admitted:
                raise self._refuse()
            self._busy += 1
        future = self._pool.submit(fn, *args)
        future.add_done_callback(self._finished)
        return await asyncio.wrap_future(future)
