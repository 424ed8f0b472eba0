"""The payment service: `make_app` builds the Tornado application, `main` runs it until SIGTERM."""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal

import tornado.httpserver
import tornado.netutil
import tornado.web

import settings as settings_module
from handlers import ops, parents, wechatpay_notifications
from handlers.admin_api import admin_api_routes
from handlers.backoffice import backoffice_routes
from handlers.base import NotFoundHandler
from handlers.bodylimit import DISCARD_LIMIT, BodyLimit
from handlers.clientip import ForwardedForWatch
from realtime.hub import Hub
from realtime.ws import OrderStatusSocket, snapshot_by_order_id
from models import close_database, open_database, personal_data
from services import health, notifications
from services.audit_trail.sealer import AuditSealer
from services.audit_trail.verify import Verifier
from services.admission import Admission
from services.context import AppContext
from services.jobs.bills import BillJob
from services.jobs.reconcile import Reconciler
from services.lifecycle.statuses import REFUND_COUNTED
from services.messages.subscribe_messages import MESSAGE_KINDS, MessageSender
from services.redis_client import open_redis
from services.wechat.notification_verifier import NotificationVerifier
from services.wechat.open_api import WeChatOpenAPI
from services.wechat.pay_gateway import PaymentGatewayError, WeChatPayGateway
from supervisor import Supervisor
from telemetry import metrics
from telemetry.context import request_id_for
from telemetry.logs import access_log, configure as configure_logging

log = logging.getLogger("gym.server")

ORDER_ID = r"([^/]+)"
DRAIN_SECONDS = 20  # below systemd's TimeoutStopSec (30 s in deploy/systemd/gym.service)
LISTEN_BACKLOG = 4096  # the kernel caps it at net.core.somaxconn
GC_THRESHOLD = 20_000  # allocations between young-generation collections (the default is 700)


def _named(routes):
    """Each of our handlers learns its route's pattern (the `route` label of the metrics, never a raw path)."""
    return [(pattern, handler, {**kwargs, "route": pattern} if "ctx" in kwargs else kwargs)
            for pattern, handler, kwargs in routes]


def make_app(ctx: AppContext, extra_routes=()) -> tornado.web.Application:
    """The Tornado application on an opened context."""
    c = {"ctx": ctx}
    routes = [
        (r"/healthz", ops.HealthHandler, c),
        (r"/readyz", ops.ReadyHandler, c),
        (r"/metrics", ops.MetricsHandler, c),
        (r"/api/v1/auth/login", parents.LoginHandler, c),
        (r"/api/v1/courses/schedules", parents.SchedulesHandler, c),
        (r"/api/v1/courses/schedules/([0-9]{1,18})", parents.ScheduleHandler, c),
        (r"/api/v1/payment/orders/create", parents.CreateOrderHandler, c),
        (r"/api/v1/payment/orders", parents.OrdersHandler, c),
        (rf"/api/v1/payment/orders/{ORDER_ID}/cancel", parents.CancelOrderHandler, c),
        (rf"/api/v1/payment/orders/{ORDER_ID}", parents.OrderHandler, c),
        (r"/api/v1/payment/wxpay/create", parents.WxPayCreateHandler, c),
        (rf"/api/v1/payment/wxpay/qrcode/{ORDER_ID}", parents.WxPayQRCodeHandler, c),
        (r"/api/v1/waitlist", parents.WaitlistHandler, c),
        (r"/api/v1/waitlist/([0-9]{1,18})", parents.WaitlistEntryHandler, c),
        (r"/api/v1/payment/wxpay/callback", wechatpay_notifications.PaymentNotificationHandler, c),
        (r"/api/v1/payment/wxpay/refund-callback", wechatpay_notifications.RefundNotificationHandler, c),
        *admin_api_routes(c),
        *backoffice_routes(c),
        (r"/ws/orders", OrderStatusSocket, c),
        *extra_routes,
    ]
    if ctx.settings.dev_mode:  # the demo checkout and its sandbox shortcuts exist only in dev mode
        from handlers.demo import demo_routes

        routes += demo_routes(c)
    return tornado.web.Application(_named(routes), default_handler_class=NotFoundHandler, default_handler_args=c,
                                   compress_response=False, log_function=access_log)


def make_http_server(app, settings) -> tornado.httpserver.HTTPServer:
    """The HTTP server in front of the app: bodies over MAX_BODY_BYTES get 413, idle or slow clients are cut."""
    # BodyLimit refuses a body over MAX_BODY_BYTES itself (declared or chunked); Tornado's own cap only has to be
    # above what BodyLimit reads and discards so that the 413 is always answered.
    return tornado.httpserver.HTTPServer(BodyLimit(app, settings.max_body_bytes, on_refused=_refused),
                                         max_body_size=DISCARD_LIMIT, idle_connection_timeout=75, body_timeout=30)


def _refused(start_line, request_headers, response_headers):
    """A body refused before any handler ran still gets its X-Request-ID, its log line and its count."""
    rid = request_id_for(request_headers.get("X-Request-ID") if request_headers else None)
    response_headers["X-Request-ID"] = rid
    log.warning("413 %s %s: body over the limit [%s]", start_line.method, start_line.path.split("?")[0], rid)
    metrics.observe_request("body_limit", metrics.method_label(start_line.method), 413, 0.0)


async def open_context(settings, run_jobs=None) -> AppContext:
    """Open the database pool, Redis, the WeChat Pay and open-API clients, and start the background job."""
    ctx = AppContext(settings=settings, forwarded_for=ForwardedForWatch(settings.trusted_proxies))
    personal_data.configure(settings.data_key, settings.data_key_previous)
    ctx.admission = Admission(settings)
    await open_database(settings.database, pool_max=settings.db_pool_max)
    ctx.redis_clients = open_redis(settings.redis)  # one server, or the master the Sentinels name
    ctx.redis = ctx.redis_clients.requests  # rate limits and readiness: a short wait, then without Redis
    ctx.gateway = WeChatPayGateway(settings)
    try:
        await ctx.gateway.open()
    except PaymentGatewayError:
        log.warning("WeChat Pay not reachable at start; the client opens on first use")
    ctx.verifier = NotificationVerifier(settings, ctx.gateway)
    ctx.open_api = WeChatOpenAPI(settings)
    ctx.hub = Hub(ctx.redis_clients.publisher, ctx.redis_clients.subscriber, snapshot_by_order_id,
                  ping_interval=settings.ws_ping_interval_seconds)
    ctx.hub.start()
    ctx.messages = MessageSender(ctx)
    ctx.messages.start()
    ctx.audit_verifier = Verifier(settings)
    ctx.audit_sealer = AuditSealer(ctx)  # sealing is part of the audit trail, not an optional job
    ctx.audit_sealer.start()
    ctx.reconciler = ctx.bill_job = None
    if settings.run_jobs if run_jobs is None else run_jobs:
        ctx.reconciler = Reconciler(ctx)
        ctx.reconciler.start()
        ctx.bill_job = BillJob(ctx)
        ctx.bill_job.start()
    return ctx


async def close_context(ctx: AppContext):
    """Stop the jobs and close what open_context opened."""
    if getattr(ctx, "reconciler", None):
        await ctx.reconciler.stop()
    if getattr(ctx, "bill_job", None):
        await ctx.bill_job.stop()
    await ctx.hub.stop()
    await ctx.messages.stop()
    await ctx.audit_sealer.stop()
    await ctx.gateway.close()
    await ctx.open_api.close()
    await ctx.redis_clients.aclose()
    try:
        await asyncio.wait_for(close_database(), 10)  # waits for borrowed connections to come back
    except asyncio.TimeoutError:
        log.warning("the database pool did not close in 10 s")


async def serve(settings, sockets):
    """One worker: open everything, serve the bound sockets until SIGTERM or SIGINT, then drain and close."""
    ctx = await open_context(settings)
    await health.check_data_keys()  # a restore from before a data-key change: said at once, and alerted on
    app = make_app(ctx)
    server = make_http_server(app, settings)
    server.add_sockets(sockets)
    # What start-up made lives as long as the process: out of the collector's way, and collections less often
    # (a request leaves little garbage in cycles; the default threshold of 700 ran the collector every few requests).
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 20)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker %d serving on the %s event loop", os.getpid(), type(loop).__module__.split(".")[0])
    await stop.wait()
    log.info("worker %d shutting down: no new connections, draining", os.getpid())
    server.stop()
    ctx.hub.close_sockets()  # WebSocket clients reconnect (to another worker) and get a fresh snapshot
    deadline = loop.time() + DRAIN_SECONDS
    while ctx.in_flight and loop.time() < deadline:  # requests under way finish (a WeChat Pay call may take 13 s)
        await asyncio.sleep(0.05)
    if ctx.in_flight:
        log.warning("%d requests still running after %d s; closing anyway", ctx.in_flight, DRAIN_SECONDS)
    try:
        await asyncio.wait_for(server.close_all_connections(), timeout=5)
    except asyncio.TimeoutError:
        log.warning("some connections did not close in 5 s")
    await close_context(ctx)
    log.info("worker %d stopped", os.getpid())


def _run(coro, event_loop: str):
    """asyncio.run on the chosen event loop: uvloop's (libuv, in C) or the standard library's."""
    if event_loop == "uvloop":
        import uvloop
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(coro)
    return asyncio.run(coro)


def main():
    """`python server.py`: bind the port, then serve it with one process or WORKERS supervised processes."""
    settings = settings_module.load_or_exit()
    configure_logging(settings.log_level, settings.log_format)
    # A deep accept queue: 5,000 mini-programs reconnecting at once after a deploy must wait, not be refused.
    sockets = tornado.netutil.bind_sockets(settings.port, settings.host, backlog=LISTEN_BACKLOG)
    metrics.clear_directory()
    metrics.init_series(settings.reconcile_interval_seconds, notifications.KINDS, notifications.OUTCOMES,
                        REFUND_COUNTED, MESSAGE_KINDS)
    log.info("listening on http://%s:%s with %d worker(s)", settings.host, settings.port, settings.workers)
    if not settings.trusted_proxies:
        log.info("TRUSTED_PROXIES is empty: X-Forwarded-For is believed from no one (behind a reverse proxy, set it "
                 "to the proxy's address; a request carrying one is warned about and shown in /readyz)")
    if settings.workers == 1:
        _run(serve(settings, sockets), settings.event_loop)
    else:
        Supervisor(settings.workers, lambda: _run(serve(settings, sockets), settings.event_loop)).run()
    log.info("stopped")


if __name__ == "__main__":
    main()
