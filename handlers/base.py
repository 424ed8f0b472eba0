"""BaseHandler: JSON in and out, the contract's error body for every failure, never a traceback."""
from __future__ import annotations

import json
import logging

import tornado.web

import errors
from models import DATABASE_UNAVAILABLE
from services.accounts import tokens
from services.audit import Actor

from telemetry.context import bind_request, request_id_for

from .clientip import client_ip

log = logging.getLogger("gym.http")


class RequestPlumbing:
    """What every handler of ours shares (the JSON API's and the back office's): the route name for the metrics,
    the request id, the client's address, the audit actor, the count of requests a draining worker waits for,
    and admission (a slot of a budget of services/admission.py for the expensive methods)."""

    # method -> the budget its requests take a slot of (services.admission); other methods take none
    admission: dict = {}

    def initialize(self, ctx, route=None):
        self.ctx = ctx
        self.route_name = route
        self._slot = None

    @property
    def request_id(self) -> str:
        """This request's id: the client's X-Request-ID when well formed, else a new one (contract §2)."""
        if not hasattr(self, "_request_id"):
            self._request_id = request_id_for(self.request.headers.get("X-Request-ID"))
        return self._request_id

    @property
    def client_ip(self) -> str:
        """The client's address (TRUSTED_PROXIES decides whether X-Forwarded-For is believed)."""
        if not hasattr(self, "_client_ip"):
            self._client_ip = client_ip(self.request.remote_ip, self.request.headers.get_list("X-Forwarded-For"),
                                        self.ctx.settings.trusted_proxies)
        return self._client_ip

    def actor(self, kind="user", user_id=None, operator_id=None) -> Actor:
        """Who is acting, with this request's IP and user agent."""
        return Actor(kind, user_id=user_id, operator_id=operator_id, ip=self.client_ip,
                     user_agent=self.request.headers.get("User-Agent"))

    def begin_serving(self):
        """Bind the request id for logs and calls, count the request in flight, and notice a proxy that
        TRUSTED_PROXIES does not name."""
        bind_request(self.request_id)
        self._count_in_flight(True)
        self.ctx.forwarded_for.observe(self.request.remote_ip, self.request.headers)

    def _count_in_flight(self, serving: bool):
        if serving != getattr(self, "_in_flight", False):
            self._in_flight = serving
            self.ctx.in_flight += 1 if serving else -1

    async def admit(self):
        """Take a slot of this method's budget (waiting for one only if that is expected to be quick), else 503
        SERVICE_UNAVAILABLE with Retry-After. Called before anything is read from the token or written anywhere.
        Tornado does not see a client leave while its request waits: the wait is bounded by time instead."""
        name = self.admission.get(self.request.method)
        if name is not None:
            budget = self.ctx.admission[name]
            self._slot = (budget, await budget.enter())

    def _give_back_slot(self):
        if self._slot is not None:
            (budget, since), self._slot = self._slot, None
            budget.leave(since)

    def on_finish(self):
        self._count_in_flight(False)
        self._give_back_slot()  # an admitted request holds its slot until its answer is finished

    def on_connection_close(self):
        self._count_in_flight(False)
        super().on_connection_close()


class BaseHandler(RequestPlumbing, tornado.web.RequestHandler):
    """Common plumbing of every API handler."""

    def check_xsrf_cookie(self):
        """API routes authenticate with a bearer token, never a cookie: no cross-site forgery to check."""

    def set_default_headers(self):
        self.set_header("Content-Type", "application/json; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("X-Request-ID", self.request_id)

    async def prepare(self):
        self.begin_serving()
        limit = self.ctx.settings.max_body_bytes  # handlers.bodylimit answers first; this guards any other server
        if len(self.request.body or b"") > limit:
            raise errors.ServiceError(413, "PAYLOAD_TOO_LARGE", f"请求体超过 {limit} 字节")
        await self.admit()

    def write_json(self, data, status=200):
        """Answer data as JSON."""
        self.set_status(status)
        self.finish(json.dumps(data, ensure_ascii=False, separators=(",", ":")))

    def json_body(self) -> dict:
        """The request body as a JSON object; 400 INVALID_REQUEST otherwise."""
        if not self.request.body:
            return {}
        return parse_json_object(self.request.body)

    def bearer_token(self) -> str:
        """The token of `Authorization: Bearer ...`; 401 when absent."""
        header = self.request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise errors.unauthenticated()
        return token.strip()

    def current_user_id(self) -> int:
        """The parent's user id from the token; 401 otherwise."""
        return tokens.verify(self.ctx.settings.secret_key, self.bearer_token(), "user")

    def _handle_request_exception(self, e):
        if self._finished:
            return
        if isinstance(e, errors.ServiceError):
            self._answer_error(e)
        elif isinstance(e, tornado.web.HTTPError):
            self._answer_error(_http_error(e))
        elif isinstance(e, DATABASE_UNAVAILABLE):
            log.error("%s %s: dependency unavailable: %s", self.request.method, self.request.path, e)
            self._answer_error(errors.service_unavailable())
        else:
            log.error("%s %s failed", self.request.method, self.request.path, exc_info=e)
            self._answer_error(errors.ServiceError(500, "INTERNAL_ERROR", "服务器内部错误"))

    def _answer_error(self, error: errors.ServiceError):
        self.clear()
        self.set_status(error.status)
        if error.status == 503:
            self.set_header("Retry-After", str(error.retry_after))
        self.finish(json.dumps(self.error_body(error), ensure_ascii=False))

    def error_body(self, error: errors.ServiceError) -> dict:
        """The JSON body of an error answer (the contract's)."""
        return error.body()

    def write_error(self, status_code, **kwargs):
        self._answer_error(errors.ServiceError(status_code, _CODES.get(status_code, "ERROR"), "请求失败"))


def _no_constants(name):
    raise ValueError(f"{name} is not JSON")


def parse_json_object(raw: bytes) -> dict:
    """A JSON object from request bytes; 400 INVALID_REQUEST for anything else (NaN, deep nesting included)."""
    try:
        data = json.loads(raw, parse_constant=_no_constants)
    except (ValueError, UnicodeDecodeError, RecursionError):
        raise errors.invalid_request("请求体不是合法的 JSON") from None
    if not isinstance(data, dict):
        raise errors.invalid_request("请求体必须是 JSON 对象")
    return data


_CODES = {400: "INVALID_REQUEST", 404: "NOT_FOUND", 405: "METHOD_NOT_ALLOWED", 413: "PAYLOAD_TOO_LARGE"}


def _http_error(e: tornado.web.HTTPError) -> errors.ServiceError:
    code = _CODES.get(e.status_code, "ERROR")
    messages = {404: "资源不存在", 405: "不支持该请求方法", 400: "请求参数错误"}
    return errors.ServiceError(e.status_code, code, messages.get(e.status_code, "请求失败"))


class NotFoundHandler(BaseHandler):
    """Unknown routes answer the contract's 404 body."""

    def prepare(self):
        raise errors.not_found("接口不存在")
