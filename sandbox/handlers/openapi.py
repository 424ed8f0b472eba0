"""The WeChat open API endpoints a mini-program back end calls: login, access tokens, subscribe messages."""
import json

from .base import RecordedHandler, dump


class OpenApiHandler(RecordedHandler):
    """Answers the WeChat way: HTTP 200 and an errcode in the body."""

    def answer(self, payload, status=200):
        """Send a JSON answer with WeChat's own Content-Type."""
        self.answer_body = payload
        self.set_status(status)
        self.set_header("Content-Type", "application/json; encoding=utf-8")
        self.finish(dump(payload))

    def answer_fault(self, fault):
        body = {"errcode": fault.errcode, "errmsg": fault.errmsg}
        status = 200 if fault.wechat_style or fault.status in (0, 200) else fault.status
        self.answer(body, status)

    def json_or_none(self):
        """The request body as JSON, or None when it is not JSON."""
        try:
            return json.loads(self.request.body or b"")
        except ValueError:
            return None


class CodeToSessionHandler(OpenApiHandler):
    """GET /sns/jscode2session."""

    def get(self):
        arg = self.get_query_argument
        self.answer(self.sandbox.miniprogram.code_to_session(
            arg("appid", None), arg("secret", None), arg("js_code", None), arg("grant_type", None)))


class TokenHandler(OpenApiHandler):
    """GET /cgi-bin/token."""

    def get(self):
        arg = self.get_query_argument
        self.answer(self.sandbox.miniprogram.access_token(
            arg("grant_type", None), arg("appid", None), arg("secret", None)))


class StableTokenHandler(OpenApiHandler):
    """POST /cgi-bin/stable_token."""

    def post(self):
        self.answer(self.sandbox.miniprogram.stable_access_token(self.json_or_none()))


class SubscribeSendHandler(OpenApiHandler):
    """POST /cgi-bin/message/subscribe/send?access_token=."""

    def post(self):
        self.answer(self.sandbox.miniprogram.send_subscribe(
            self.get_query_argument("access_token", None), self.json_or_none()))
