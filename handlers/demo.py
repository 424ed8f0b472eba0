"""Dev mode only: the demo checkout under /demo/ and two shortcuts that stand in for the WeChat client on a phone."""
from __future__ import annotations

import json
import os
from urllib.parse import quote

import tornado.web
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

import errors
from services.orders.views import get_user_order

from .base import BaseHandler

DEMO_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "demo")
PAY_RESULTS = {"success": "pay", "fail": "fail"}


class DemoFileHandler(tornado.web.StaticFileHandler):
    """The page and its assets, never cached, so an edit shows on the next reload."""

    def set_extra_headers(self, path):
        self.set_header("Cache-Control", "no-cache")


class SandboxShortcut(BaseHandler):
    """Forwards one call to the sandbox's control API (in dev mode WECHAT_API_BASE is the sandbox)."""

    async def forward(self, path: str, body: dict) -> dict:
        """POST body to the sandbox; its refusals come back as the contract's error body."""
        request = HTTPRequest(self.ctx.settings.wechat_api_base + path, method="POST", body=json.dumps(body),
                              headers={"Content-Type": "application/json"}, request_timeout=10)
        try:
            resp = await AsyncHTTPClient().fetch(request, raise_error=False)
            data = json.loads(resp.body or b"{}")
        except (OSError, ValueError):
            raise errors.service_unavailable("微信沙箱不可用，请确认已用 make run 启动") from None
        if resp.code >= 500:
            raise errors.service_unavailable("微信沙箱不可用，请确认已用 make run 启动")
        if resp.code >= 400:
            raise errors.ServiceError(resp.code, data.get("code", "SANDBOX_ERROR"), data.get("message", "沙箱拒绝了请求"))
        return data


class WxLoginHandler(SandboxShortcut):
    """POST /demo/api/wx-login: a one-use code for a new WeChat user, as wx.login gives one."""

    async def post(self):
        minted = await self.forward("/sandbox/wx/login", {})
        self.write_json({"code": minted["code"]})


class PayHandler(SandboxShortcut):
    """POST /demo/api/pay {"order_id", "result": "success"|"fail"}: the payer acts in the WeChat Pay sheet."""

    async def post(self):
        body = self.json_body()
        action = PAY_RESULTS.get(body.get("result"))
        if action is None:
            raise errors.invalid_request("result 必须是 success 或 fail", field="result")
        order = await get_user_order(self.current_user_id(), body.get("order_id"))
        data = await self.forward(f"/sandbox/orders/{quote(order.order_id, safe='')}/{action}", {"notify": True})
        self.write_json({"order_id": order.order_id, "trade_state": data["order"]["trade_state"]})


def demo_routes(c) -> list:
    """The demo's routes; server.make_app mounts them only when DEV_MODE is on."""
    return [
        (r"/demo/api/wx-login", WxLoginHandler, c),
        (r"/demo/api/pay", PayHandler, c),
        (r"/demo", tornado.web.RedirectHandler, {"url": "/demo/"}),
        (r"/demo/(.*)", DemoFileHandler, {"path": DEMO_DIR, "default_filename": "index.html"}),
    ]
