"""GET /ws/orders?token=...: subscribe to your own orders' status, within the limits of realtime/limits.py.

The handshake is an ordinary Tornado handler that hands the connection over to an OrderStatusConnection
(realtime/wire.py's lean WebSocket) and is done: an idle socket holds only what the live status needs.
"""
from __future__ import annotations

import json
import logging

import tornado.web

import errors
from handlers.base import parse_json_object
from models import DATABASE_UNAVAILABLE
from services.accounts import tokens
from services.formats import iso, is_order_id
from services.orders.views import SNAPSHOT, USER_SNAPSHOT
from telemetry.context import bind_request, request_id_for

from .hub import status_message
from .limits import CLOSE_TOO_MANY_SOCKETS, MAX_MESSAGE_BYTES, MAX_SUBSCRIPTIONS, MessageBudget
from .wire import WireSocket, accept_key

log = logging.getLogger("gym.ws")

CLOSE_UNAUTHENTICATED = 4401


def snapshot_frame(row) -> dict:
    """The push frame for an order as it stands now (a row of statements.SNAPSHOT)."""
    return status_message(row.order_id, row.status, row.reservation_status, iso(row.updated_at))


async def snapshot_by_order_id(order_id) -> dict:
    """The push frame for any order by its public id (the Hub re-sends these after a Redis outage)."""
    return snapshot_frame(await SNAPSHOT.first(order_id))


def error_frame(code: str, message: str, **extra) -> dict:
    """The socket's answer to a message it cannot serve."""
    return {"type": "error", "code": code, "message": message, **extra}


class OrderStatusSocket(tornado.web.RequestHandler):
    """The WebSocket handshake (RFC 6455 section 4.2): checked, answered 101, then the connection is handed over."""

    def initialize(self, ctx, route=None):
        self.ctx = ctx
        self.route_name = route

    @property
    def request_id(self) -> str:
        """The handshake's X-Request-ID (or a new one), kept for the socket's life."""
        if not hasattr(self, "_request_id"):
            self._request_id = request_id_for(self.request.headers.get("X-Request-ID"))
        return self._request_id

    def set_default_headers(self):
        self.set_header("X-Request-ID", self.request_id)

    def get(self):
        bind_request(self.request_id)
        headers = self.request.headers
        connection = {part.strip().lower() for part in headers.get("Connection", "").split(",")}
        key = headers.get("Sec-WebSocket-Key", "")
        if headers.get("Upgrade", "").lower() != "websocket" or "upgrade" not in connection or not key:
            self.set_status(400)
            self.finish("Can \"Upgrade\" only to \"WebSocket\".")
            return
        if headers.get("Sec-WebSocket-Version") not in ("7", "8", "13"):
            self.set_status(426, "Upgrade Required")
            self.set_header("Sec-WebSocket-Version", "13")
            self.finish()
            return
        # The origin is not checked: the token authenticates, and the mini-program sends no Origin we could trust.
        self.ctx.forwarded_for.observe(self.request.remote_ip, headers)
        try:
            user_id = tokens.verify(self.ctx.settings.secret_key, self.get_query_argument("token", ""), "user")
        except errors.ServiceError:
            user_id = None
        self.set_status(101)
        self.clear_header("Content-Type")
        self.set_header("Upgrade", "websocket")
        self.set_header("Connection", "Upgrade")
        self.set_header("Sec-WebSocket-Accept", accept_key(key))
        self.finish()
        OrderStatusConnection(self.ctx, self.detach(), user_id, self.request_id).open()


class OrderStatusConnection(WireSocket):
    """One mini-program connection; forwards its subscriptions to the Hub.

    Its next message is read only once the last one has been served, so one socket's messages are served one at a
    time: the subscription count and the budget need no lock.
    """

    __slots__ = ("ctx", "user_id", "request_id", "orders", "budget")
    max_message_size = MAX_MESSAGE_BYTES  # a bigger message closes the socket with 1009, before it is read

    def __init__(self, ctx, stream, user_id, request_id):
        super().__init__(stream)
        self.ctx = ctx
        self.user_id = user_id
        self.request_id = request_id
        self.orders = None  # the orders this socket is subscribed to (a set), each known to be the caller's
        self.budget = MessageBudget()

    def open(self):
        """Refuse a bad token with 4401; count the socket as one of its user's; start reading."""
        if self.user_id is None:
            self.close(CLOSE_UNAUTHENTICATED, "unauthenticated")
            self.start()  # for the client's close
            return
        for oldest in self.ctx.hub.user_sockets.add(self.user_id, self):
            oldest.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets")
        self.start()

    def on_message(self, message):
        verdict = self.budget.take()
        if verdict != "ok":
            if verdict == "refuse":
                self.push(error_frame("RATE_LIMITED", "消息过于频繁，请稍后再试"))
            return None
        try:
            data = parse_json_object(message)
        except errors.ServiceError:
            self.push(error_frame("INVALID_REQUEST", "消息不是合法的 JSON 对象"))
            return None
        op = data.get("op")
        if op == "ping":
            self.push({"type": "pong"})
        elif op == "subscribe":
            return self._subscribe_or_say_why_not(data.get("order_id"))
        elif op == "unsubscribe":
            self._unsubscribe(data.get("order_id"))
        else:
            self.push(error_frame("INVALID_REQUEST", "未知的操作"))
        return None

    async def _subscribe_or_say_why_not(self, order_id):
        try:
            await self._subscribe(order_id)
        except DATABASE_UNAVAILABLE as e:
            log.warning("subscribe not served, the database is unavailable: %s", e)
            self.push(error_frame("SERVICE_UNAVAILABLE", "服务暂时不可用，请稍后重试"))

    async def _subscribe(self, order_id):
        if not is_order_id(order_id):
            self._not_found(order_id)
            return
        if self.orders is None or order_id not in self.orders:
            if self.orders is not None and len(self.orders) >= MAX_SUBSCRIPTIONS:
                self.push(error_frame("TOO_MANY_SUBSCRIPTIONS", f"每个连接最多订阅 {MAX_SUBSCRIPTIONS} 个订单",
                                      order_id=order_id))
                return
            # Ownership first: the socket is registered for an order only once it is known to be the caller's, so
            # no push can reach a stranger.
            if await USER_SNAPSHOT.first(order_id, self.user_id) is None:
                self._not_found(order_id)
                return
            if self.closing or self.closed:
                return
            if self.orders is None:
                self.orders = set()
            self.orders.add(order_id)
            self.ctx.hub.subscribe(order_id, self)
        # Read after registering, so a change committed before the registration is in this snapshot and one
        # committed after it is pushed: nothing is missed.
        row = await SNAPSHOT.first(order_id)
        if row is not None:
            self.push(snapshot_frame(row))

    def _unsubscribe(self, order_id):
        if not isinstance(order_id, str):
            self.push(error_frame("INVALID_REQUEST", "order_id 必须是订单号"))
            return
        if self.orders is not None and order_id in self.orders:
            self.orders.discard(order_id)
            self.ctx.hub.unsubscribe(self, order_id)

    def _not_found(self, order_id):
        self.push(error_frame("NOT_FOUND", "订单不存在", order_id=order_id if isinstance(order_id, str) else None))

    def push(self, message: dict):
        """Send a frame (nothing once the socket is closing)."""
        self.send_text(json.dumps(message, ensure_ascii=False))

    def on_close(self):
        for order_id in self.orders or ():
            self.ctx.hub.unsubscribe(self, order_id)
        self.orders = None
        if self.user_id is not None:
            self.ctx.hub.user_sockets.remove(self.user_id, self)
