"""How long to wait before trying again after failures: one back-off for every job that asks WeChat Pay again."""
from __future__ import annotations

MAX_BACKOFF_SECONDS = 300


def backoff_seconds(interval: float, failures: int, cap: float = MAX_BACKOFF_SECONDS) -> float:
    """`interval` after a success (no failures), doubling with each failure in a row, at most `cap`."""
    if failures <= 0:
        return interval
    return min(interval * (2 ** min(failures, 32)), cap)
