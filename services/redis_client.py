"""Every Redis client of the service, opened from REDIS_URL: one server, or the master that Sentinels name.

With Sentinels, redis-py's `redis.asyncio.sentinel.Sentinel.master_for` asks them for the master's address on every
new connection, so after a failover each reconnect reaches the new master. A connection still open to a demoted
master answers a write with READONLY; redis-py then drops it and raises ConnectionError, which the one retry below
turns into a reconnect to the new master. Whatever still fails is the caller's to absorb: Redis holds nothing that
MySQL cannot rebuild (the Hub re-sends state after an outage, rate limits are skipped, readiness says "down").
"""
from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

CONNECT_TIMEOUT = 1  # seconds; a Redis or Sentinel on the local network answers a connect in milliseconds
READ_TIMEOUT = 2  # seconds; a command that takes longer fails (a stalled Redis never holds a request long)
HEALTH_CHECK_SECONDS = 10  # an idle pooled connection is PINGed before use, so a dead one is found and replaced


@dataclass
class RedisClients:
    """The service's Redis clients on one REDIS_URL; `aclose()` closes them all."""

    commands: aioredis.Redis  # publishes, rate limits, readiness: one quick retry on a lost connection
    subscriber: aioredis.Redis  # the Hub's pub/sub: never retried inside redis-py, so the Hub sees every break
    sentinel: Sentinel | None = None  # the connections to the Sentinels, when REDIS_URL names them

    async def aclose(self):
        """Close every connection this object opened."""
        await self.commands.aclose()
        await self.subscriber.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


def open_redis(redis_url) -> RedisClients:
    """The clients for a parsed REDIS_URL (settings.RedisURL); connections are made on first use."""
    # One retry, no backoff: enough to replace a connection the server closed (a restart, a demoted master) and
    # never a stall: the Hub's publisher and resubscription retry on their own schedule.
    commands = {"retry": Retry(NoBackoff(), 1)}
    # No retry for the subscription: redis-py would otherwise reconnect and resubscribe silently, and the Hub, which
    # re-sends every subscriber its order's state after a break, would never learn that pushes were missed.
    subscriber = {"retry": Retry(NoBackoff(), 0)}
    options = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": READ_TIMEOUT,
               "health_check_interval": HEALTH_CHECK_SECONDS}
    if not redis_url.uses_sentinel:
        return RedisClients(commands=aioredis.from_url(redis_url.url, **options, **commands),
                            subscriber=aioredis.from_url(redis_url.url, **options, **subscriber))
    # A Sentinel that is down is skipped at once (no retry) for the next one in REDIS_URL's list.
    sentinel = Sentinel(list(redis_url.sentinels), sentinel_kwargs={
        "socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": READ_TIMEOUT, "retry": Retry(NoBackoff(), 0)})
    master = {**options, "db": redis_url.db, "username": redis_url.username, "password": redis_url.password}
    return RedisClients(commands=sentinel.master_for(redis_url.master, **master, **commands),
                        subscriber=sentinel.master_for(redis_url.master, **master, **subscriber),
                        sentinel=sentinel)
