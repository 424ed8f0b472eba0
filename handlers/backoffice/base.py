"""PageHandler: the back office's HTML pages — session cookie, XSRF, roles, Chinese error pages, a strict CSP."""
from __future__ import annotations

import logging
import os
from urllib.parse import urlencode

import tornado.web

import errors
from models import DATABASE_UNAVAILABLE
from services.accounts import auth, roles
from services.audit import Actor

from ..base import RequestPlumbing
from . import labels, login_cookie
from .assets import ROOT, htmx_available

log = logging.getLogger("gym.backoffice")

TEMPLATES = os.path.join(ROOT, "templates", "backoffice")
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
       "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'")
_HTTP_MESSAGES = {
    400: "请求参数错误", 403: "页面已过期或请求来源无法验证，请刷新页面后重试", 404: "页面不存在",
    405: "不支持该请求方法", 413: "提交的内容过大",
}


class PageHandler(RequestPlumbing, tornado.web.RequestHandler):
    """A back office page: every request carries a live operator session whose role holds the method's right.

    `rights` maps each method to a right of services.accounts.roles; a method not listed is 405. `public` pages
    (login) need no session. Every POST must carry Tornado's XSRF token (form field `_xsrf` or header `X-XSRFToken`).
    """

    rights: dict = {}
    public = False

    def initialize(self, ctx, route=None):
        super().initialize(ctx, route)
        self.operator = None

    def get_template_path(self):
        return TEMPLATES

    def set_default_headers(self):
        self.set_header("Content-Type", "text/html; charset=UTF-8")
        self.set_header("Cache-Control", "no-store")
        self.set_header("Content-Security-Policy", CSP)
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Referrer-Policy", "same-origin")
        self.set_header("Vary", "HX-Request, HX-Target")
        self.set_header("X-Request-ID", self.request_id)

    def set_cookie(self, name, value, domain=None, expires=None, path=None, expires_days=None, **kwargs):
        """Every cookie of the pages (the session and Tornado's `_xsrf`): /admin only, HttpOnly, SameSite=Strict,
        Secure when the request came over HTTPS."""
        kwargs.update(httponly=True, samesite="Strict", secure=self.over_https)
        super().set_cookie(name, value, domain, expires, login_cookie.PATH, expires_days, **kwargs)

    @property
    def over_https(self) -> bool:
        """True when the browser talks HTTPS to us (directly, or to a proxy inside TRUSTED_PROXIES)."""
        return login_cookie.came_over_https(self.request, self.ctx.settings.trusted_proxies)

    def operator_actor(self) -> Actor:
        """The audit actor of this page's action: the logged-in operator."""
        return self.actor("operator", operator_id=self.operator.id)

    async def prepare(self):
        self.begin_serving()
        if self.request.method not in ("GET", "HEAD"):
            self.check_xsrf_cookie()  # Tornado's own check: 403 without the right token
        await self.admit()
        if self.public:
            return
        token = login_cookie.load(self)
        if token is None:
            self.to_login(expired=False)
            return
        try:
            self.operator = await auth.operator_for_token(self.ctx, token)
        except errors.ServiceError as e:
            if e.status != 401:
                raise
            login_cookie.forget(self)  # expired, password changed or deactivated: out at once
            self.to_login(expired=True)
            return
        right = self.rights.get(self.request.method)
        if right is None:
            raise tornado.web.HTTPError(405)
        if not roles.may(self.operator.role, right):
            raise errors.forbidden("当前角色无权访问此页面或执行此操作")

    def may(self, right: str) -> bool:
        """True when the logged-in operator holds `right`."""
        return self.operator is not None and roles.may(self.operator.role, right)

    def to_login(self, expired: bool):
        """Send the browser to the login page (htmx: HX-Redirect, so a fragment never holds the login form)."""
        query = {}
        if self.request.method == "GET" and not self.is_htmx:
            query["next"] = self.request.uri
        if expired:
            query["out"] = "1"
        target = "/admin/login" + (f"?{urlencode(query)}" if query else "")
        if self.is_htmx:
            self.set_status(401)
            self.set_header("HX-Redirect", target)
            self.finish()
        else:
            self.redirect(target, status=303)

    @property
    def is_htmx(self) -> bool:
        """An htmx request asking for part of a page (a history restore wants the whole page)."""
        headers = self.request.headers
        return headers.get("HX-Request") == "true" and headers.get("HX-History-Restore-Request") != "true"

    def wants(self, target: str) -> bool:
        """True when htmx asked for the element `#target` only."""
        return self.is_htmx and self.request.headers.get("HX-Target") == target

    def show(self, page: str, fragment: str, target: str, status: int = 200, **values):
        """Render the whole page, or only the fragment htmx asked for."""
        self.set_status(status)
        self.render(fragment if self.wants(target) else page, **values)

    def args(self, *names) -> dict:
        """Query arguments named (empty ones as None), plus `limit` and `cursor` (the services check them)."""
        return {name: (self.get_query_argument(name, "").strip() or None) for name in (*names, "limit", "cursor")}

    def form(self, name: str) -> str:
        """A form field, stripped ('' when absent)."""
        return self.get_body_argument(name, "").strip()

    def url_with(self, **changes) -> str:
        """This page's URL with some query arguments changed (None removes one); `cursor` is dropped unless given."""
        query = {k: self.get_query_argument(k) for k in self.request.query_arguments if k != "cursor"}
        query.update(changes)
        query = {k: v for k, v in query.items() if v not in (None, "")}
        return self.request.path + (f"?{urlencode(query)}" if query else "")

    def get_template_namespace(self):
        namespace = super().get_template_namespace()
        namespace.update(op=self.operator, may=self.may, L=labels, role_names=roles.ROLE_NAMES,
                         htmx=htmx_available(), url_with=self.url_with, path=self.request.path)
        return namespace

    def show_error(self, status: int, message: str, retry_after: int = 1):
        """The error page (or, for htmx, the message alone) in Chinese; never a traceback."""
        self.clear()
        self.set_status(status)
        if status == 503:
            self.set_header("Retry-After", str(retry_after))
        try:
            self.render("_error.html" if self.is_htmx else "error.html", status=status, message=message)
        except Exception:  # noqa: BLE001 - the error page itself failed: answer something plain
            log.exception("error page failed")
            self.clear()
            self.set_status(status)
            self.finish(message)

    def _handle_request_exception(self, e):
        if isinstance(e, tornado.web.Finish):
            if not self._finished:
                self.finish(*e.args)
            return
        if self._finished:
            return
        if isinstance(e, errors.ServiceError):
            self.show_error(e.status, e.message, e.retry_after)
        elif isinstance(e, tornado.web.HTTPError):
            self.show_error(e.status_code, _HTTP_MESSAGES.get(e.status_code, "请求失败"))
        elif isinstance(e, DATABASE_UNAVAILABLE):
            log.error("%s %s: dependency unavailable: %s", self.request.method, self.request.path, e)
            self.show_error(503, "服务暂时不可用，请稍后重试")
        else:
            log.error("%s %s failed", self.request.method, self.request.path, exc_info=e)
            self.show_error(500, "服务器内部错误")

    def write_error(self, status_code, **kwargs):
        self.show_error(status_code, _HTTP_MESSAGES.get(status_code, "请求失败"))


class PageNotFound(PageHandler):
    """Any other path under /admin/: a Chinese 404 page (no session needed, nothing revealed)."""

    public = True

    def prepare(self):
        self.begin_serving()
        raise tornado.web.HTTPError(404)
