"""The Tornado application of the sandbox and its main(): load keys and state, write service.env, serve."""
import asyncio
import logging
import os
import signal

import tornado.web

from .credentials import load_or_create, write_service_env
from .core import Sandbox
from .key_changes import CHANGES
from .recorder import mask_uri
from .handlers import bill_control, bills, cashier, control, dashboard, keys, openapi, pay
from .handlers.base import NotFoundHandler
from .handlers.ui import UI_METHODS, UI_MODULES
from .store import Store

log = logging.getLogger("sandbox")
NAME = r"([^/]+)"


def make_app(sandbox):
    """The Application serving WeChat Pay v3, the open API, the control API, the dashboard and the cashier page."""
    routes = [
        (r"/v3/pay/transactions/(jsapi|native)", pay.OrderCreateHandler),
        (rf"/v3/pay/transactions/out-trade-no/{NAME}", pay.OrderByOutTradeNoHandler),
        (rf"/v3/pay/transactions/out-trade-no/{NAME}/close", pay.OrderCloseHandler),
        (rf"/v3/pay/transactions/id/{NAME}", pay.OrderByTransactionIdHandler),
        (r"/v3/refund/domestic/refunds", pay.RefundCreateHandler),
        (rf"/v3/refund/domestic/refunds/{NAME}", pay.RefundQueryHandler),
        (r"/v3/certificates", pay.CertificatesHandler),
        (r"/v3/bill/tradebill", bills.TradeBillHandler),
        (r"/v3/bill/fundflowbill", bills.FundFlowBillHandler),
        (r"/v3/billdownload/file", bills.BillDownloadHandler),
        (r"/v3/.*", pay.PayNotFoundHandler),
        (r"/sns/jscode2session", openapi.CodeToSessionHandler),
        (r"/cgi-bin/token", openapi.TokenHandler),
        (r"/cgi-bin/stable_token", openapi.StableTokenHandler),
        (r"/cgi-bin/message/subscribe/send", openapi.SubscribeSendHandler),
        (r"/sandbox/health", control.HealthHandler),
        (r"/sandbox/info", control.InfoHandler),
        (r"/sandbox/wx/login", control.LoginHandler),
        (r"/sandbox/wx/tokens/expire", control.ExpireTokensHandler),
        (r"/sandbox/wx/tokens/revoke", control.RevokeTokensHandler),
        (r"/sandbox/orders", control.OrdersHandler),
        (rf"/sandbox/orders/{NAME}", control.OrderHandler),
        (rf"/sandbox/orders/{NAME}/pay", control.OrderPayHandler),
        (rf"/sandbox/orders/{NAME}/fail", control.OrderFailHandler),
        (rf"/sandbox/orders/{NAME}/probe", control.OrderProbeHandler),
        (r"/sandbox/refunds", control.RefundsHandler),
        (rf"/sandbox/refunds/{NAME}", control.RefundHandler),
        (rf"/sandbox/refunds/{NAME}/settle", control.RefundSettleHandler),
        (r"/sandbox/notifications", control.NotificationsHandler),
        (r"/sandbox/notifications/next", control.NotificationRuleHandler),
        (rf"/sandbox/notifications/{NAME}", control.NotificationHandler),
        (rf"/sandbox/notifications/{NAME}/redeliver", control.NotificationRedeliverHandler),
        (r"/sandbox/faults", control.FaultsHandler),
        (r"/sandbox/faults/release", control.FaultsReleaseHandler),
        (r"/sandbox/config", control.ConfigHandler),
        (r"/sandbox/keys", keys.KeysHandler),
        (rf"/sandbox/keys/({'|'.join(CHANGES)})", keys.KeyChangeHandler),
        (rf"/sandbox/keys/merchant-certificate/{NAME}/revoke", keys.MerchantRevokeHandler),
        (r"/sandbox/requests", control.RequestsHandler),
        (r"/sandbox/messages", control.MessagesHandler),
        (r"/sandbox/reset", control.ResetHandler),
        (r"/sandbox/bills/(\d{4}-\d{2}-\d{2})", bill_control.BillHandler),
        (r"/sandbox/bills/(\d{4}-\d{2}-\d{2})/rows", bill_control.BillRowsHandler),
        (r"/sandbox/bills/(\d{4}-\d{2}-\d{2})/omit", bill_control.BillOmitHandler),
        (r"/sandbox/bill", bill_control.BillPageHandler),
        (r"/sandbox/cashier", cashier.CashierHandler),
        (r"/sandbox/?", dashboard.DashboardHandler),
    ]
    args = {"sandbox": sandbox}
    return tornado.web.Application(
        [(pattern, handler, args) for pattern, handler in routes],
        default_handler_class=NotFoundHandler, default_handler_args=args,
        template_path=os.path.join(os.path.dirname(__file__), "templates"),
        ui_methods=UI_METHODS, ui_modules=UI_MODULES, log_function=access_log,
    )


def access_log(handler):
    """Tornado's access log with the secrets of the query (app secret, js_code, access token) masked."""
    status = handler.get_status()
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    logging.getLogger("tornado.access").log(level, "%d %s %s %.1fms", status, handler.request.method,
                                            mask_uri(handler.request.uri), 1000.0 * handler.request.request_time())


def base_url(host, port):
    """The URL clients use to reach the sandbox (a wildcard bind is reached over loopback)."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


async def main(args):
    """Start the sandbox and serve until SIGINT or SIGTERM."""
    creds = load_or_create(args.state_dir)
    url = base_url(args.host, args.port)
    write_service_env(creds, url)
    store = Store(creds.state_dir)
    if args.clear_state:
        store.clear()
    sandbox = Sandbox(creds, store, time_scale=args.time_scale, notify_key_mode=args.notify_key_mode, url=url)
    resumed = sandbox.resume()
    server = make_app(sandbox).listen(args.port, address=args.host, xheaders=False)
    log.info("WeChat sandbox on %s (mchid %s, appid %s, state %s, time scale %s): %d orders, %d refunds, "
             "%d notifications resumed", url, creds.mchid, creds.appid, store.path, args.time_scale,
             len(sandbox.trades.orders), len(sandbox.refunds.refunds), resumed)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stop.set)
    await stop.wait()
    server.stop()
    await sandbox.close()
    await server.close_all_connections()
    store.close()
    log.info("sandbox stopped")
