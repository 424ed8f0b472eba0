"""GET /ws/orders?token=...: subscribe to your own orders' status."""
from __future__ import annotations

import json
import logging

import tornado.websocket

import errors
from services.accounts import tokens
from services.formats import iso, is_order_id
from services.orders.views import SNAPSHOT, USER_SNAPSHOT
from telemetry.context import bind_request, request_id_for

from .hub import status_message

log = logging.getLogger("gym.ws")

CLOSE_UNAUTHENTICATED = 4401


def snapshot_frame(row) -> dict:
    """The push frame for an order as it stands now (a row of statements.SNAPSHOT)."""
    return status_message(row.order_id, row.status, row.reservation_status, iso(row.updated_at))


async def snapshot_by_order_id(order_id) -> dict:
    """The push frame for any order by its public id (the Hub re-sends these after a Redis outage)."""
    return snapshot_frame(await SNAPSHOT.first(order_id))


class OrderStatusSocket(tornado.websocket.WebSocketHandler):
    """One mini-program connection; forwards its subscriptions to the Hub."""

    def initialize(self, ctx, route=None):
        self.ctx = ctx
        self.route_name = route
        self.user_id = None
        self.orders = set()

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
        try:
            self.user_id = tokens.verify(self.ctx.settings.secret_key, self.get_query_argument("token", ""), "user")
        except errors.ServiceError:
            self.close(CLOSE_UNAUTHENTICATED, "unauthenticated")

    async def on_message(self, message):
        if self.user_id is None:
            return
        bind_request(self.request_id)
        try:
            data = json.loads(message)
            op = data.get("op")
        except (ValueError, AttributeError):
            self.push({"type": "error", "code": "INVALID_REQUEST", "message": "消息不是合法的 JSON 对象"})
            return
        if op == "ping":
            self.push({"type": "pong"})
        elif op == "subscribe":
            await self._subscribe(data.get("order_id"))
        elif op == "unsubscribe":
            self.orders.discard(data.get("order_id"))
            self.ctx.hub.unsubscribe(self, data.get("order_id"))
        else:
            self.push({"type": "error", "code": "INVALID_REQUEST", "message": "未知的操作"})

    async def _subscribe(self, order_id):
        if not is_order_id(order_id):
            self._not_found(order_id)
            return
        # Register before reading, so a change committed in between is pushed rather than lost; one read decides
        # both whether the order is the caller's and what it says now.
        self.ctx.hub.subscribe(order_id, self)
        row = await USER_SNAPSHOT.first(order_id, self.user_id)
        if row is None:
            self.ctx.hub.unsubscribe(self, order_id)
            self._not_found(order_id)
            return
        self.orders.add(order_id)
        self.push(snapshot_frame(row))

    def _not_found(self, order_id):
        self.push({"type": "error", "code": "NOT_FOUND", "message": "订单不存在",
                   "order_id": order_id if isinstance(order_id, str) else None})

    def push(self, message: dict):
        """Send a frame; a closed connection is dropped from the Hub."""
        try:
            self.write_message(json.dumps(message, ensure_ascii=False))
        except tornado.websocket.WebSocketClosedError:
            self.ctx.hub.unsubscribe(self)

    def on_close(self):
        self.ctx.hub.unsubscribe(self)
