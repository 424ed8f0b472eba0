"""GET /ws/orders?token=...: subscribe to your own orders' status, within the limits of realtime/limits.py."""
from __future__ import annotations

import json
import logging

import tornado.websocket

import errors
from handlers.base import parse_json_object
from models import DATABASE_UNAVAILABLE
from services.accounts import tokens
from services.formats import iso, is_order_id
from services.orders.views import SNAPSHOT, USER_SNAPSHOT
from telemetry.context import bind_request, request_id_for

from .hub import status_message
from .limits import CLOSE_TOO_MANY_SOCKETS, MAX_MESSAGE_BYTES, MAX_SUBSCRIPTIONS, MessageBudget

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


class OrderStatusSocket(tornado.websocket.WebSocketHandler):
    """One mini-program connection; forwards its subscriptions to the Hub.

    Tornado reads a socket's next message only once on_message has returned, so one socket's messages are served
    one at a time: the subscription count and the budget need no lock.
    """

    def initialize(self, ctx, route=None):
        self.ctx = ctx
        self.route_name = route
        self.user_id = None
        self.orders = set()  # the orders this socket is subscribed to, each known to be the caller's
        self.budget = MessageBudget()

    @property
    def max_message_size(self) -> int:
        """Tornado closes the socket with 1009 for a bigger message, before reading it."""
        return MAX_MESSAGE_BYTES

    @property
    def request_id(self) -> str:
        """The handshake's X-Request-ID (or a new one), kept for the socket's life."""
        if not hasattr(self, "_request_id"):
            self._request_id = request_id_for(self.request.headers.get("X-Request-ID"))
        return self._request_id

    def set_default_headers(self):
        self.set_header("X-Request-ID", self.request_id)

    def check_origin(self, origin):
        return True  # the token authenticates; the mini-program sends no browser Origin we could trust

    def open(self):
        bind_request(self.request_id)
        self.ctx.forwarded_for.observe(self.request.remote_ip, self.request.headers)
        try:
            self.user_id = tokens.verify(self.ctx.settings.secret_key, self.get_query_argument("token", ""), "user")
        except errors.ServiceError:
            self.close(CLOSE_UNAUTHENTICATED, "unauthenticated")
            return
        for oldest in self.ctx.hub.user_sockets.add(self.user_id, self):
            oldest.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets")

    async def on_message(self, message):
        if self.user_id is None:
            return
        bind_request(self.request_id)
        verdict = self.budget.take()
        if verdict != "ok":
            if verdict == "refuse":
                self.push(error_frame("RATE_LIMITED", "消息过于频繁，请稍后再试"))
            return
        try:
            data = parse_json_object(message)
        except errors.ServiceError:
            self.push(error_frame("INVALID_REQUEST", "消息不是合法的 JSON 对象"))
            return
        op = data.get("op")
        if op == "ping":
            self.push({"type": "pong"})
        elif op == "subscribe":
            try:
                await self._subscribe(data.get("order_id"))
            except DATABASE_UNAVAILABLE as e:
                log.warning("subscribe not served, the database is unavailable: %s", e)
                self.push(error_frame("SERVICE_UNAVAILABLE", "服务暂时不可用，请稍后重试"))
        elif op == "unsubscribe":
            self._unsubscribe(data.get("order_id"))
        else:
            self.push(error_frame("INVALID_REQUEST", "未知的操作"))

    async def _subscribe(self, order_id):
        if not is_order_id(order_id):
            self._not_found(order_id)
            return
        if order_id not in self.orders:
            if len(self.orders) >= MAX_SUBSCRIPTIONS:
                self.push(error_frame("TOO_MANY_SUBSCRIPTIONS", f"每个连接最多订阅 {MAX_SUBSCRIPTIONS} 个订单",
                                      order_id=order_id))
                return
            # Ownership first: the socket is registered for an order only once it is known to be the caller's, so
            # no push can reach a stranger.
            if await USER_SNAPSHOT.first(order_id, self.user_id) is None:
                self._not_found(order_id)
                return
            if self._closed():
                return
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
        if order_id in self.orders:
            self.orders.discard(order_id)
            self.ctx.hub.unsubscribe(self, order_id)

    def _not_found(self, order_id):
        self.push(error_frame("NOT_FOUND", "订单不存在", order_id=order_id if isinstance(order_id, str) else None))

    def _closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    def push(self, message: dict):
        """Send a frame; a closed connection is dropped from the Hub."""
        try:
            self.write_message(json.dumps(message, ensure_ascii=False))
        except tornado.websocket.WebSocketClosedError:
            self._forget()

    def _forget(self):
        for order_id in self.orders:
            self.ctx.hub.unsubscribe(self, order_id)
        self.orders.clear()

    def on_close(self):
        self._forget()
        if self.user_id is not None:
            self.ctx.hub.user_sockets.remove(self.user_id, self)
