"""Every Redis client of the service, opened from REDIS_URL: one server, or the master that Sentinels name.

With Sentinels, redis-py's `redis.asyncio.sentinel.Sentinel.master_for` asks them for the master's address on every
new connection, so after a failover each reconnect reaches the new master. A connection still open to a demoted
master answers a write with READONLY; redis-py then drops it and raises ConnectionError, which the one retry below
turns into a reconnect to the new master (Sentinel itself closes the clients of the master it demotes, so mostly
the service just sees a closed connection). Whatever still fails is the caller's to absorb: Redis holds nothing
that MySQL cannot rebuild (the Hub re-sends state after a break, rate limits are skipped, readiness says "down").
"""
from __future__ import annotations

from dataclasses import dataclass

import redis.asyncio as aioredis
from redis.asyncio.retry import Retry
from redis.asyncio.sentinel import Sentinel
from redis.backoff import NoBackoff

# A request waits for Redis at most this long per attempt (a rate limit is skipped, readiness says "down"): a Redis
# on the local network answers in a millisecond, and a dead master's machine must not hold a parent's login.
REQUEST_TIMEOUT = 0.25
CONNECT_TIMEOUT = 1  # the Hub's publisher and subscription: off the request path, so patient
READ_TIMEOUT = 2
HEALTH_CHECK_SECONDS = 10  # an idle pooled connection is PINGed before use, so a dead one is found and replaced
ONE_RETRY = Retry(NoBackoff(), 1)  # replaces a connection the server closed (a restart, a demotion), never a stall
NO_RETRY = Retry(NoBackoff(), 0)


@dataclass
class RedisClients:
    """The service's Redis clients on one REDIS_URL; `aclose()` closes them all."""

    requests: aioredis.Redis  # on the request path: rate limits, readiness
    publisher: aioredis.Redis  # the Hub's publishes
    subscriber: aioredis.Redis  # the Hub's pub/sub: never retried inside redis-py, so the Hub sees every break
    sentinel: Sentinel | None = None  # the connections to the Sentinels, when REDIS_URL names them

    async def aclose(self):
        """Close every connection this object opened."""
        for client in (self.requests, self.publisher, self.subscriber):
            await client.aclose()
        if self.sentinel is not None:
            await self.sentinel.aclose()


def open_redis(redis_url) -> RedisClients:
    """The clients for a parsed REDIS_URL (settings.RedisURL); connections are made on first use."""
    patient = {"socket_connect_timeout": CONNECT_TIMEOUT, "socket_timeout": READ_TIMEOUT,
               "health_check_interval": HEALTH_CHECK_SECONDS}
    kinds = {
        "requests": {"socket_connect_timeout": REQUEST_TIMEOUT, "socket_timeout": REQUEST_TIMEOUT,
                     "health_check_interval": HEALTH_CHECK_SECONDS, "retry": ONE_RETRY},
        "publisher": {**patient, "retry": ONE_RETRY},
        # No retry for the subscription: redis-py would otherwise reconnect and resubscribe by itself, and the Hub,
        # which re-sends every subscriber its order's state after a break, would never learn that pushes were missed.
        # No health-check PING of redis-py's either: the Hub PINGs a silent subscription itself and hears the answer.
        "subscriber": {**patient, "health_check_interval": 0, "retry": NO_RETRY},
    }
    if not redis_url.uses_sentinel:
        return RedisClients(**{kind: aioredis.from_url(redis_url.url, **options) for kind, options in kinds.items()})
    # A Sentinel that is down is skipped at once (no retry) for the next one in REDIS_URL's list.
    sentinel = Sentinel(list(redis_url.sentinels), sentinel_kwargs={
        "socket_connect_timeout": REQUEST_TIMEOUT, "socket_timeout": REQUEST_TIMEOUT, "retry": NO_RETRY})
    master = {"db": redis_url.db, "username": redis_url.username, "password": redis_url.password}
    return RedisClients(**{kind: sentinel.master_for(redis_url.master, **master, **options)
                           for kind, options in kinds.items()}, sentinel=sentinel)
