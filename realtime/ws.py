"""GET /ws/orders?token=...: subscribe to your own orders' status, within the limits of realtime/limits.py.

The socket is Tornado's `tornado.websocket.WebSocketHandler` (the protocol is the library's, not ours). What each
handler keeps is slimmed where Tornado allows it: our own attributes live in slots, so that the handler's
attributes are Tornado's 27 alone, within the 30 names CPython 3.11 keeps in a table shared by a class's instances
(each instance then holds a values array, not a dict of its own: 0.5 KiB less per socket, 1.3 KiB less than with
our 7 names beside Tornado's); once open, the request (its headers, its query string with the token) is dropped;
the orders a socket follows are a tuple; and no task runs per socket (the Hub pings every socket from one
keep-alive task; Tornado's websocket_ping_interval stays unset). bench/ws_heap.py shows what each socket holds.
"""
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


# The attributes Tornado 6.5 sets on an open WebSocketHandler (RequestHandler's and WebSocketHandler's __init__,
# _execute, get, _detach_stream). See _share_instance_keys.
TORNADO_HANDLER_ATTRIBUTES = (
    "application", "request", "_headers_written", "_finished", "_auto_finish", "_prepared_future", "ui", "_headers",
    "_write_buffer", "_status_code", "_reason", "ws_connection", "close_code", "close_reason", "_on_close_called",
    "_transforms", "path_args", "path_kwargs", "open_args", "open_kwargs",
    "write", "redirect", "set_header", "set_cookie", "set_status", "flush", "finish",
)


def snapshot_frame(row) -> dict:
    """The push frame for an order as it stands now (a row of statements.SNAPSHOT)."""
    return status_message(row.order_id, row.status, row.reservation_status, iso(row.updated_at))


async def snapshot_by_order_id(order_id) -> dict:
    """The push frame for any order by its public id (the Hub re-sends these after a Redis outage)."""
    return snapshot_frame(await SNAPSHOT.first(order_id))


def error_frame(code: str, message: str, **extra) -> dict:
    """The socket's answer to a message it cannot serve."""
    return {"type": "error", "code": code, "message": message, **extra}


def _retrieve(future):
    """A write's outcome is not awaited: read it, so a closed socket logs no 'exception never retrieved'."""
    if not future.cancelled():
        future.exception()


class OrderStatusSocket(tornado.websocket.WebSocketHandler):
    """One mini-program connection; forwards its subscriptions to the Hub.

    Tornado reads a socket's next message only once on_message (its coroutine included) has finished, so one
    socket's messages are served one at a time: the subscription count and the budget need no lock.
    """

    max_message_size = MAX_MESSAGE_BYTES  # Tornado closes the socket with 1009 for a bigger message, before reading it
    # Ours, out of the instance's __dict__ (which Tornado's attributes alone keep within CPython's shared keys).
    __slots__ = ("ctx", "route_name", "user_id", "orders", "budget", "pong_due", "_request_id")

    def initialize(self, ctx, route=None):
        self.ctx = ctx
        self.route_name = route
        self.user_id = None
        self.orders = ()  # the orders this socket is subscribed to (at most MAX_SUBSCRIPTIONS), each the caller's
        self.budget = MessageBudget()
        self.pong_due = False  # the Hub's keep-alive pinged and no pong came back yet

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
            # Checked once per socket: not kept in the tokens' cache (0.9 KiB a socket's parent would hold there)
            user_id = tokens.verify(self.ctx.settings.secret_key, self.get_query_argument("token", ""), "user",
                                    remember=False)
        except errors.ServiceError:
            user_id = None
        self._slim()
        if user_id is None:
            self.close(CLOSE_UNAUTHENTICATED, "unauthenticated")
            return
        self.user_id = user_id
        for oldest in self.ctx.hub.user_sockets.add(self.user_id, self):
            oldest.close(CLOSE_TOO_MANY_SOCKETS, "too many sockets")

    def _slim(self):
        """Drop what the open socket no longer needs: the request (headers, query string with the token, body) and
        the handshake's response state. Tornado's handshake coroutine keeps the headers object alive for the socket's
        life, so it is initialised again, empty (emptying it key by key would keep its two dicts' tables, 416 bytes);
        nothing of Tornado reads the request after open."""
        request, self.request = self.request, None
        request.headers.__init__()
        self._headers = None
        self._write_buffer = self._transforms = None
        self.path_args = self.path_kwargs = self.open_args = self.open_kwargs = None
        self.ui = None

    def log_exception(self, typ, value, tb):
        """Tornado's version describes the request, dropped at open: say which socket instead."""
        log.error("WebSocket %s: a message handler failed", self.request_id, exc_info=(typ, value, tb))

    def on_message(self, message):
        if self.user_id is None:
            return None
        bind_request(self.request_id)
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
            return self._subscribe_or_say_why_not(data.get("order_id"))  # a coroutine: Tornado awaits it
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
            self.orders += (order_id,)
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
            self.orders = tuple(o for o in self.orders if o != order_id)
            self.ctx.hub.unsubscribe(self, order_id)

    def _not_found(self, order_id):
        self.push(error_frame("NOT_FOUND", "订单不存在", order_id=order_id if isinstance(order_id, str) else None))

    def _closed(self) -> bool:
        return self.ws_connection is None or self.ws_connection.is_closing()

    def push(self, message: dict):
        """Send a frame; a closed connection is dropped from the Hub."""
        try:
            self.write_message(json.dumps(message, ensure_ascii=False)).add_done_callback(_retrieve)
        except tornado.websocket.WebSocketClosedError:
            self._forget()

    def ping(self, data=b""):
        """The Hub's keep-alive: Tornado's ping, the pong awaited (on_pong); nothing once the socket is closing."""
        self.pong_due = True
        try:
            super().ping(data)
        except tornado.websocket.WebSocketClosedError:
            pass

    def on_pong(self, data):
        self.pong_due = False

    def _forget(self):
        for order_id in self.orders:
            self.ctx.hub.unsubscribe(self, order_id)
        self.orders = ()

    def on_close(self):
        self._forget()
        if self.user_id is not None:
            self.ctx.hub.user_sockets.remove(self.user_id, self)


def _share_instance_keys(cls, names):
    """Have every instance of cls keep its attributes in the class's shared key table (a values array, about 0.5
    KiB less per socket than a dict of its own).

    CPython 3.11 shares the keys only while the table has room, and each new instance shrinks the room left to
    the names already seen plus one. A burst of handshakes in a fresh process (a reconnect storm after a restart)
    makes dozens of handlers before the first reaches Tornado's _execute, so the names Tornado sets there and
    later never enter the table, and every socket of the process's life gets a dict of its own. One throwaway
    instance, made before any real one, enters them all. A name missing here costs memory, never correctness.
    """
    probe = cls.__new__(cls)
    for name in names:
        setattr(probe, name, None)


_share_instance_keys(OrderStatusSocket, TORNADO_HANDLER_ATTRIBUTES)

