"""The Hub: this process's WebSocket subscribers, and the Redis pub/sub task that feeds them."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import deque

from models import utcnow
from telemetry import metrics
from services.formats import iso
from services.tasks import cancel_and_wait

from .limits import UserSockets

log = logging.getLogger("gym.realtime")

CHANNEL = "gym:order-status"
OUTBOX_MAX = 10000
LIVENESS_SECONDS = 3.0  # a subscription silent this long is PINGed; silent twice as long, it is opened again
KEEPALIVE_BATCH = 500  # sockets pinged between two turns of the event loop


def status_message(order_id, status, reservation_status, at) -> dict:
    """The contract's push frame."""
    return {"type": "order.status", "order_id": order_id, "status": status,
            "reservation_status": reservation_status, "at": at}


class Hub:
    """Owns the subscribers of this process and one Redis subscription; survives Redis outages and failovers."""

    def __init__(self, redis, subscriber, snapshot, retry_seconds=1.0, origin=None, ping_interval=20.0):
        self.redis = redis  # publishes (services.redis_client.RedisClients.publisher)
        self.subscriber = subscriber  # the subscription's client: each break reaches _listen_forever, never retried
        self.snapshot = snapshot  # async (order_id) -> message dict, read from MySQL
        self.retry_seconds = retry_seconds
        self.ping_interval = ping_interval  # the keep-alive: every socket is pinged this often (0: never)
        self.origin = origin or uuid.uuid4().hex  # tags this process's pushes (delivered here when made)
        self.subscribers = {}  # order_id -> (connection, ...): a tuple (48 bytes for one, a set 216; rarely two)
        self.user_sockets = UserSockets()  # user_id -> that user's open connections here (at most 5)
        self.connected = asyncio.Event()
        self.outbox = deque(maxlen=OUTBOX_MAX)  # pushes (delivered here already) waiting for Redis, in order
        self._outbox_ready = asyncio.Event()
        self._task = None
        self._publisher_task = None
        self._keepalive_task = None
        self._stopping = False

    # -- subscribers -------------------------------------------------------------------------------
    def subscribe(self, order_id, conn):
        """Register conn for the order's pushes."""
        conns = self.subscribers.get(order_id, ())
        if conn not in conns:
            self.subscribers[order_id] = conns + (conn,)

    def unsubscribe(self, conn, order_id=None):
        """Forget conn (for one order, or for all of them)."""
        for oid in [order_id] if order_id else list(self.subscribers):
            conns = self.subscribers.get(oid)
            if conns is not None and conn in conns:
                rest = tuple(c for c in conns if c is not conn)
                if rest:
                    self.subscribers[oid] = rest
                else:
                    del self.subscribers[oid]

    @property
    def connection_count(self):
        """Distinct subscribed connections."""
        return len({c for conns in self.subscribers.values() for c in conns})

    def deliver(self, message: dict):
        """Send a push to this process's subscribers of its order."""
        for conn in self.subscribers.get(message.get("order_id"), ()):  # a tuple: a push that unsubscribes is safe
            conn.push(message)

    # -- publishing --------------------------------------------------------------------------------
    async def publish(self, events):
        """Push committed status changes: to this process's sockets at once, and queued for Redis (the other
        processes' sockets); returns at once (a slow Redis never slows a request).

        One publisher task sends them in order, tagged with our origin so that this process, which delivered them
        already, skips them when Redis echoes them back. If Redis refuses, they stay queued and go out when it
        answers.
        """
        for event in events:
            message = status_message(event["order_id"], event["status"], event["reservation_status"],
                                     event.get("at") or iso_now())
            self.deliver(message)  # this process's sockets at once, before the answer; the others through Redis
            if len(self.outbox) == self.outbox.maxlen:
                log.error("push outbox full: the oldest queued push is dropped (clients re-read on resubscribe)")
            self.outbox.append(message)
        metrics.REDIS_PUSH_BACKLOG.set(len(self.outbox))
        self._outbox_ready.set()

    async def _publish_queued(self):
        failing = False
        while not self._stopping:
            await self._outbox_ready.wait()
            self._outbox_ready.clear()
            while self.outbox:
                item = self.outbox[0]
                try:
                    await self.redis.publish(CHANNEL, json.dumps({**item, "_origin": self.origin}))
                except Exception as e:  # noqa: BLE001 - the state is in MySQL; keep the pushes and retry
                    if not failing:
                        log.warning("pushes not published (Redis down?); delivered here, kept for the other "
                                    "processes: %s", e)
                    failing = True
                    await asyncio.sleep(self.retry_seconds)
                    continue
                failing = False
                if self.outbox and self.outbox[0] is item:
                    self.outbox.popleft()
                metrics.REDIS_PUSH_BACKLOG.set(len(self.outbox))

    def _received(self, data):
        message = json.loads(data)
        if message.pop("_origin", None) == self.origin:
            return  # our own push: delivered here when it was made
        self.deliver(message)

    # -- the subscription loop ---------------------------------------------------------------------
    def start(self):
        """Start listening to Redis in the running loop."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._listen_forever())
        self._publisher_task = loop.create_task(self._publish_queued())
        if self.ping_interval:
            self._keepalive_task = loop.create_task(self._keep_alive())

    def close_sockets(self, code=1001, reason="server restarting"):
        """Close every WebSocket (the process is going away; clients reconnect elsewhere)."""
        for conn in self.user_sockets.all():
            conn.close(code, reason)

    async def _keep_alive(self):
        """Every ping_interval: a socket that has not answered the last ping is closed, the others pinged again.

        One task for all of them, instead of one per socket (Tornado's websocket_ping_interval stays unset): a
        socket that stops answering is sent its close within two intervals of its last pong, and Tornado cuts the
        connection 5 s later if the client does not answer the close.
        """
        while not self._stopping:
            await asyncio.sleep(self.ping_interval)
            for k, conn in enumerate(self.user_sockets.all()):
                if conn.pong_due:
                    conn.close(1000, "ping timed out")
                else:
                    conn.ping()  # the handler's: Tornado's ping, on_pong clears pong_due
                if k % KEEPALIVE_BATCH == KEEPALIVE_BATCH - 1:
                    await asyncio.sleep(0)

    async def stop(self, flush_seconds=2.0):
        """Publish what is queued (for up to `flush_seconds`), then stop listening."""
        deadline = asyncio.get_running_loop().time() + flush_seconds
        while self.outbox and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
        self._stopping = True
        for task, what in ((self._task, "the push subscription"), (self._publisher_task, "the push publisher"),
                           (self._keepalive_task, "the WebSocket keepalive")):
            await cancel_and_wait(task, timeout=5.0, what=what)

    async def _listen_forever(self):
        first = True
        while not self._stopping:
            # With Sentinels every new subscription asks them for the master, so after a failover it is the new one.
            pubsub = self.subscriber.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.connected.set()
                if not first:
                    log.info("Redis is back: pushes resume, subscribers get fresh snapshots")
                    await self._resend_snapshots()
                first = False
                await self._receive(pubsub)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # noqa: BLE001 - Redis went away: retry, never crash
                if self.connected.is_set():
                    log.warning("Redis subscription lost: %s", e)
                self.connected.clear()
                first = False
            finally:
                try:
                    await pubsub.aclose()
                except Exception:  # noqa: BLE001
                    pass
            if not self._stopping:
                await asyncio.sleep(self.retry_seconds)

    async def _receive(self, pubsub):
        """Hand each push to the subscribers until the subscription breaks or falls silent.

        A master that hangs, or whose machine vanished, closes nothing: the read would wait forever (TCP keepalive is
        answered by a hung server's kernel), while the Sentinels promote another. So after LIVENESS_SECONDS without a
        word the subscription is PINGed, and after twice that it counts as broken and is opened again.
        """
        loop = asyncio.get_running_loop()
        heard = loop.time()
        while not self._stopping:
            item = await pubsub.get_message(timeout=LIVENESS_SECONDS)
            if item is not None:
                heard = loop.time()
                if item.get("type") == "message":
                    try:
                        self._received(item["data"])
                    except (ValueError, TypeError, AttributeError):
                        log.warning("ignored a malformed push")
                continue
            silent = loop.time() - heard
            if silent >= 2 * LIVENESS_SECONDS:
                raise ConnectionError(f"Redis has not answered the subscription's PING for {silent:.0f} s")
            if silent >= LIVENESS_SECONDS:
                await pubsub.ping()

    async def _resend_snapshots(self):
        """After an outage, every subscriber gets its order's state as MySQL has it now."""
        for order_id in list(self.subscribers):
            try:
                self.deliver(await self.snapshot(order_id))
            except Exception:  # noqa: BLE001
                log.exception("snapshot of %s failed", order_id)


def iso_now():
    """Now in the API's time format."""
    return iso(utcnow())
