"""Base handlers: JSON errors, faults and the request record of the emulated APIs, form posts to the control API."""
import asyncio
import json
import time

import tornado.web

from .. import clock
from ..crypto import request_id
from ..errors import SandboxError

FORM_TYPE = "application/x-www-form-urlencoded"


def dump(payload):
    """Compact UTF-8 JSON bytes, as WeChat sends them."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


class BaseHandler(tornado.web.RequestHandler):
    """Knows the Sandbox; turns SandboxError into its JSON body, never a traceback."""

    def initialize(self, sandbox):
        self.sandbox = sandbox
        self.answer_body = None

    def log_exception(self, typ, value, tb):
        if not isinstance(value, SandboxError):
            super().log_exception(typ, value, tb)

    def error_body(self, status_code, exc):
        """The JSON body of an error answer."""
        if isinstance(exc, SandboxError):
            return exc.body()
        if status_code >= 500:
            return {"code": "SYSTEM_ERROR", "message": "系统错误"}
        return {"code": "INVALID_REQUEST", "message": self._reason}

    def write_error(self, status_code, **kwargs):
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SandboxError):
            self.set_status(exc.status)
        self.answer_body = self.error_body(self.get_status(), exc)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dump(self.answer_body))


class RecordedHandler(BaseHandler):
    """An emulated WeChat API: faults apply first, and every answered request is recorded."""

    hold_seconds = 0.0  # how long a `latency_on: answer` fault holds the finished answer back
    _held = None  # the delayed finish, once started

    async def prepare(self):
        self.started = time.monotonic()
        self.request_id = request_id()
        self.signed_with = None
        self.fault = self.sandbox.faults.take(self.request.method, self.request.path)
        if self.fault is not None:
            if self.fault.hold:
                await self.sandbox.faults.hold()
            latency = self.fault.latency_ms / 1000.0
            if self.fault.latency_on == "answer" and not self.fault.fails:
                self.hold_seconds = latency
            elif latency:
                await asyncio.sleep(latency)  # never time.sleep: other requests go on meanwhile
            if self.fault.fails and not self.fault.handled:
                self.answer_fault(self.fault)
                return
        self.check_request()

    def finish(self, chunk=None):
        """Finish, or, under a `latency_on: answer` fault, finish that much later: the work is done already."""
        if self._held is not None:
            return self._held
        if self.hold_seconds:
            if chunk is not None:
                self.write(chunk)
            self._held = asyncio.ensure_future(self._finish_later())
            return self._held
        return super().finish(chunk)

    async def _finish_later(self):
        await asyncio.sleep(self.hold_seconds)
        self.hold_seconds = 0.0
        super().finish()

    def on_connection_close(self):
        self.client_gone = True  # e.g. the client's timeout ran out during an injected latency

    def answer_fault(self, fault):
        """Answer an injected error (the subclass decides the shape)."""
        raise NotImplementedError

    def check_request(self):
        """Authentication before the handler runs (none by default)."""

    def on_finish(self):
        raw = self.request.body or b""
        try:
            request_body = json.loads(raw) if raw else None
        except ValueError:
            request_body = raw[:4000].decode("utf-8", "replace")
        self.sandbox.requests.add({
            "at": clock.iso(clock.now()),
            "method": self.request.method,
            "client_request_id": self.request.headers.get("X-Request-ID"),
            "path": self.request.path,
            "uri": self.request.uri,
            "status": self.get_status(),
            "request_id": getattr(self, "request_id", None),
            "elapsed_ms": round((time.monotonic() - getattr(self, "started", time.monotonic())) * 1000, 1),
            "fault": getattr(self, "fault", None) is not None,
            "client_gone": getattr(self, "client_gone", False),
            "signed_with": getattr(self, "signed_with", None),
            "request_body": request_body,
            "response_body": self.answer_body,
        })


class ControlHandler(BaseHandler):
    """The sandbox's own control API: plain JSON, no authentication.

    The sandbox's pages post plain HTML forms to the same endpoints: a form post gets a 303 back to the page it
    names in its `back` field (a /sandbox/ path), or an HTML error page, instead of JSON.
    """

    def from_form(self):
        """True for an HTML form post (application/x-www-form-urlencoded)."""
        content_type = self.request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        return self.request.method == "POST" and content_type == FORM_TYPE

    def back_url(self):
        """Where a form post returns: its `back` field when it is a sandbox page, else the dashboard."""
        back = self.get_body_argument("back", "/sandbox/")
        return back if back.startswith("/sandbox/") else "/sandbox/"

    def json_body(self):
        """The request's JSON object ({} when empty), or a form's fields; 400 when it is not an object."""
        if self.from_form():
            return {name: self.get_body_argument(name) for name in self.request.body_arguments if name != "back"}
        if not self.request.body:
            return {}
        try:
            body = json.loads(self.request.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise SandboxError(400, "INVALID_REQUEST", "请求体必须是 JSON 对象")
        return body

    def reply(self, payload, status=200):
        """Answer JSON, or send a form post back to its page."""
        if self.from_form():
            self.redirect(self.back_url(), status=303)
            return
        self.set_status(status)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(dump(payload))

    def write_error(self, status_code, **kwargs):
        if not self.from_form():
            return super().write_error(status_code, **kwargs)
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SandboxError):
            self.set_status(exc.status)
        self.render("error.html", error=self.error_body(self.get_status(), exc), back=self.back_url())


class NotFoundHandler(BaseHandler):
    """Anything no route matches."""

    def prepare(self):
        raise SandboxError(404, "NOT_FOUND", "请求的资源不存在", {"path": self.request.path})
