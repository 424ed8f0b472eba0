"""The Hub: this process's WebSocket subscribers, and the Redis pub/sub task that feeds them."""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections import defaultdict, deque

from models import utcnow
from services.timefmt import iso

log = logging.getLogger("gym.realtime")

CHANNEL = "gym:order-status"
OUTBOX_MAX = 10000


def status_message(order_id, status, reservation_status, at) -> dict:
    """The contract's push frame."""
    return {"type": "order.status", "order_id": order_id, "status": status,
            "reservation_status": reservation_status, "at": at}


class Hub:
    """Owns the subscribers of this process and one Redis subscription; survives Redis outages."""

    def __init__(self, redis, snapshot, retry_seconds=1.0, origin=None):
        self.redis = redis
        self.snapshot = snapshot  # async (order_id) -> message dict, read from MySQL
        self.retry_seconds = retry_seconds
        self.origin = origin or uuid.uuid4().hex  # tags the pushes this process re-publishes after a failure
        self.subscribers = defaultdict(set)  # order_id -> {connection}
        self.connected = asyncio.Event()
        self.outbox = deque(maxlen=OUTBOX_MAX)  # pushes Redis refused: delivered here already, owed to the others
        self._outbox_ready = asyncio.Event()
        self._task = None
        self._retry_task = None
        self._stopping = False

    # -- subscribers -------------------------------------------------------------------------------
    def subscribe(self, order_id, conn):
        """Register conn for the order's pushes."""
        self.subscribers[order_id].add(conn)

    def unsubscribe(self, conn, order_id=None):
        """Forget conn (for one order, or for all of them)."""
        for oid in [order_id] if order_id else list(self.subscribers):
            conns = self.subscribers.get(oid)
            if conns is not None:
                conns.discard(conn)
                if not conns:
                    del self.subscribers[oid]

    @property
    def connection_count(self):
        """Distinct subscribed connections."""
        return len({c for conns in self.subscribers.values() for c in conns})

    def deliver(self, message: dict):
        """Send a push to this process's subscribers of its order."""
        for conn in list(self.subscribers.get(message.get("order_id"), ())):
            conn.push(message)

    # -- publishing --------------------------------------------------------------------------------
    async def publish(self, events):
        """Publish committed status changes.

        If Redis refuses, this process's clients get the push at once and it is kept in the outbox, re-published
        (tagged with our origin, so we do not deliver it twice) as soon as Redis answers again.
        """
        for event in events:
            message = status_message(event["order_id"], event["status"], event["reservation_status"],
                                     event.get("at") or iso_now())
            try:
                await self.redis.publish(CHANNEL, json.dumps(message))
            except Exception as e:  # noqa: BLE001 - the state is in MySQL; the outbox re-publishes it
                log.warning("push of %s not published (Redis down?), kept for later: %s", message["order_id"], e)
                self.deliver(message)
                self.outbox.append({**message, "_origin": self.origin})
                self._outbox_ready.set()

    async def _retry_outbox(self):
        while not self._stopping:
            await self._outbox_ready.wait()
            while self.outbox:
                try:
                    await self.redis.publish(CHANNEL, json.dumps(self.outbox[0]))
                except Exception:  # noqa: BLE001 - still down
                    await asyncio.sleep(self.retry_seconds)
                    continue
                self.outbox.popleft()
            self._outbox_ready.clear()

    def _received(self, data):
        message = json.loads(data)
        if message.pop("_origin", None) == self.origin:
            return  # our own re-published push: delivered here when it was first refused
        self.deliver(message)

    # -- the subscription loop ---------------------------------------------------------------------
    def start(self):
        """Start listening to Redis in the running loop."""
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._listen_forever())
        self._retry_task = loop.create_task(self._retry_outbox())

    async def stop(self):
        """Stop listening."""
        self._stopping = True
        for task in (self._task, self._retry_task):
            if task:
                task.cancel()
                try:
                    await task
                except asyncio.CancelledError:
                    pass

    async def _listen_forever(self):
        first = True
        while not self._stopping:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(CHANNEL)
                self.connected.set()
                if not first:
                    log.info("Redis is back: pushes resume, subscribers get fresh snapshots")
                    await self._resend_snapshots()
                first = False
                async for item in pubsub.listen():
                    if item.get("type") == "message":
                        try:
                            self._received(item["data"])
                        except (ValueError, TypeError, AttributeError):
                            log.warning("ignored a malformed push")
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
