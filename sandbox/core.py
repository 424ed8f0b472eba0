"""The Sandbox: one object holding every part of the emulated WeChat state, and the actions that span parts."""
import asyncio
import dataclasses
import time

from .bills import BillBook
from .config import RuntimeConfig
from .faults import FaultBook
from .notifier import Notifier
from .openapi import MiniProgram
from .recorder import RequestLog
from .refunds import SETTLED_EVENTS, RefundBook
from .trades import TradeBook


class Sandbox:
    """Orders, refunds, bills, notifications, the mini-program, faults and the request log of one sandbox process.

    What WeChat would keep (orders, refunds, notifications, codes, tokens, messages, issued bill files) lives in
    `store`, and so do the bill controls (a day not ready, foreign rows, a spoilt file), so that a reconciliation
    retried across a restart meets the same bill; what only steers the sandbox otherwise (faults, notification
    rules, settings, the request record) lives in memory.
    """

    def __init__(self, creds, store, time_scale=1.0, notify_key_mode="pubkey", url="http://127.0.0.1:8090"):
        self.creds = creds
        self.url = url  # where the sandbox listens, as clients on this machine reach it
        self.store = store
        self.time_scale = time_scale
        self.default_key_mode = notify_key_mode
        self.config = RuntimeConfig(notify_key_mode=notify_key_mode)
        self.trades = TradeBook(creds, store)
        self.refunds = RefundBook(self.trades, self._refund_settled)
        self.bills = BillBook(creds, self.trades, self.refunds, self.config, store)
        self.notifier = Notifier(creds, self.config, time_scale, store)
        self.miniprogram = MiniProgram(creds, store)
        self.faults = FaultBook()
        self.requests = RequestLog()
        self._timers = {}

    def resume(self):
        """Re-arm the refund timers and carry on the deliveries that were under way at the last stop."""
        for refund in self.refunds.refunds.values():
            self._arm(refund)
        return self.notifier.resume()

    def pay_order(self, out_trade_no, notify=True, openid=None, bank_type=None, success_time=None):
        """The payer pays (now, or at `success_time`): the order succeeds and, unless `notify` is false,
        TRANSACTION.SUCCESS goes out."""
        with self.store.atomic():
            order = self.trades.pay(out_trade_no, openid=openid, bank_type=bank_type, success_time=success_time)
            note = None
            if notify:
                note = self.notifier.send("TRANSACTION.SUCCESS", "支付成功", "transaction",
                                          self.trades.transaction(order), order.notify_url,
                                          {"out_trade_no": order.out_trade_no})
        return order, note

    def probe_order(self, out_trade_no):
        """Send a signature probe (WECHATPAY/SIGNTEST/ signature) shaped like the order's payment notification."""
        order = self.trades.get(out_trade_no)
        return self.notifier.send("TRANSACTION.SUCCESS", "支付成功", "transaction", self.trades.transaction(order),
                                  order.notify_url, {"out_trade_no": order.out_trade_no}, probe=True)

    def create_refund(self, body):
        """Accept a refund and, when auto-settle is on, schedule its settlement."""
        delay = self.config.refund_settle_seconds * self.time_scale if self.config.refund_auto_settle else None
        refund = self.refunds.create(body, settle_in=delay)
        self._arm(refund)
        return refund

    def _arm(self, refund):
        """Start the automatic settlement timer of a processing refund that has one and is not armed yet."""
        if refund.status != "PROCESSING" or refund.settle_at is None or refund.out_refund_no in self._timers:
            return
        self._timers[refund.out_refund_no] = asyncio.get_running_loop().call_later(
            max(0.0, refund.settle_at - time.time()), self._auto_settle, refund.out_refund_no)

    def _auto_settle(self, out_refund_no):
        self._timers.pop(out_refund_no, None)
        if self.refunds.refunds[out_refund_no].status == "PROCESSING":
            self.refunds.settle(out_refund_no, "SUCCESS")

    def settle_refund(self, out_refund_no, result, success_time=None):
        """Settle a refund now (control API): PROCESSING to any end, ABNORMAL to SUCCESS or CLOSED; a SUCCESS
        may be dated `success_time`."""
        refund = self.refunds.settle(out_refund_no, result, success_time=success_time)
        timer = self._timers.pop(out_refund_no, None)
        if timer:
            timer.cancel()
        return refund

    def _refund_settled(self, refund):
        if not refund.notify_url:
            return  # WeChat Pay would use the URL configured on its merchant platform; the sandbox has none
        event_type, summary = SETTLED_EVENTS[refund.status]
        self.notifier.send(event_type, summary, "refund", self.refunds.notification(refund), refund.notify_url,
                           {"out_trade_no": refund.out_trade_no, "out_refund_no": refund.out_refund_no})

    def reset(self):
        """Forget faults, notification rules and bill controls; settings back to the start values. Orders and
        keys (every key change included) stay."""
        self.faults.clear()
        self.notifier.clear_rules()
        self.bills.reset()
        fresh = RuntimeConfig(notify_key_mode=self.default_key_mode)
        for name, value in dataclasses.asdict(fresh).items():
            setattr(self.config, name, value)

    def info(self):
        """Public facts of this sandbox (no secrets), for the control API."""
        return {
            "mchid": self.creds.mchid, "appid": self.creds.appid,
            "merchant_cert_serial": self.creds.merchant_serial,
            "public_key_id": self.creds.public_key_id, "platform_cert_serial": self.creds.platform_serial,
            "apiv3_key_generation": len(self.creds.apiv3_keys),
            "time_scale": self.time_scale, "config": self.config.view(),
            "state_dir": self.creds.state_dir, "state_file": self.store.path,
        }

    async def close(self):
        """Cancel timers and stop deliveries (their state stays in the store for the next start)."""
        for timer in self._timers.values():
            timer.cancel()
        await self.notifier.close()
