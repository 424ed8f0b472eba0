"""WORKERS processes on one port: the parent forks them after the sockets are bound, restarts one that dies, and
on SIGTERM (or SIGINT) passes the signal on and waits for every worker to drain.

systemd (deploy/systemd/gym.service) supervises this parent; this supervises the workers.
"""
from __future__ import annotations

import logging
import os
import signal
import time

from telemetry import metrics

log = logging.getLogger("gym.supervisor")

MAX_BACKOFF_SECONDS = 30.0


class Supervisor:
    """Forks `count` workers running `work()` and keeps that many alive until told to stop."""

    def __init__(self, count: int, work):
        self.count = count
        self.work = work
        self.children = {}  # pid -> (slot, started)
        self.stopping = False
        self.backoff = 0.5

    def _spawn(self, slot: int):
        pid = os.fork()
        if pid == 0:  # the worker
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            code = 0
            try:
                self.work()
            except SystemExit as e:
                code = e.code if isinstance(e.code, int) else 1
            except BaseException:  # noqa: BLE001 - a worker that dies is restarted; say why first
                log.exception("worker %d failed", os.getpid())
                code = 1
            finally:
                logging.shutdown()
                os._exit(code)
        self.children[pid] = (slot, time.monotonic())
        log.info("worker %d started (slot %d)", pid, slot)

    def _stop(self, signum, frame):
        if not self.stopping:
            log.info("supervisor: %s, stopping %d worker(s)", signal.Signals(signum).name, len(self.children))
        self.stopping = True
        for pid in list(self.children):
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def run(self):
        """Start the workers and supervise them; returns once every worker has stopped after a signal."""
        signal.signal(signal.SIGTERM, self._stop)
        signal.signal(signal.SIGINT, self._stop)
        for slot in range(self.count):
            self._spawn(slot)
        while self.children:
            try:
                pid, status = os.wait()
            except ChildProcessError:
                break
            child = self.children.pop(pid, None)
            if child is None:
                continue
            slot, started = child
            metrics.process_exited(pid)
            if self.stopping:
                log.info("worker %d stopped", pid)
                continue
            if time.monotonic() - started > 60:
                self.backoff = 0.5  # it had been running fine: this is not a crash loop
            log.error("worker %d died (%s); starting another in %.1fs", pid, _describe(status), self.backoff)
            time.sleep(self.backoff)
            self.backoff = min(self.backoff * 2, MAX_BACKOFF_SECONDS)
            if not self.stopping:
                self._spawn(slot)


def _describe(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"signal {signal.Signals(os.WTERMSIG(status)).name}"
    return f"exit {os.WEXITSTATUS(status)}"
