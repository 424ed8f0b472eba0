"""Fixed-window rate limits in Redis; when Redis is down the limit is not enforced (payments go on)."""
from __future__ import annotations

import logging
import time

import errors

log = logging.getLogger("gym.ratelimit")


async def check(ctx, bucket: str, who: str):
    """Count one request of `who` in `bucket`; 429 RATE_LIMITED over RATE_LIMIT_PER_MINUTE."""
    limit = ctx.settings.rate_limit_per_minute
    if limit <= 0 or ctx.redis is None:
        return
    window = int(time.time() // 60)
    key = f"gym:rl:{bucket}:{who}:{window}"
    try:
        pipe = ctx.redis.pipeline()
        pipe.incr(key)
        pipe.expire(key, 120)
        count, _ = await pipe.execute()
    except Exception as e:  # noqa: BLE001 - Redis holds nothing that must stop a request
        log.warning("rate limit not checked, Redis unavailable: %s", e)
        return
    if count > limit:
        raise errors.rate_limited()
