"""Logging in and out of the back office: the password form, the session cookie, and where to go next."""
from __future__ import annotations

import errors
from services.accounts import auth, ratelimit

from . import login_cookie
from .base import PageHandler

HOME = "/admin/"


def safe_next(target: str | None) -> str:
    """A page of ours to return to after login; anything else (another site, a scheme) becomes the home page."""
    if not target or not target.startswith("/admin/") or target.startswith("//") or "\\" in target:
        return HOME
    return target


class LoginHandler(PageHandler):
    """GET and POST /admin/login: username and password → auth.login_operator → the session cookie."""

    public = True
    admission = {"POST": "operators"}

    def get(self):
        self.render("login.html", username="", error=None, next=safe_next(self.get_query_argument("next", None)),
                    thrown_out=self.get_query_argument("out", None) == "1")

    async def post(self):
        username, next_page = self.form("username"), safe_next(self.get_body_argument("next", None))
        try:
            await ratelimit.check(self.ctx, "admin-login", self.client_ip)
            login = await auth.login_operator(self.ctx, {"username": username,
                                                         "password": self.get_body_argument("password", "")},
                                              self.actor("operator"))
        except errors.ServiceError as e:
            message = "请输入用户名和密码" if e.status == 400 else e.message
            self.set_status(e.status)
            self.render("login.html", username=username, error=message, next=next_page, thrown_out=False)
            return
        login_cookie.store(self, login["token"], login["expires_in"])
        self.redirect(next_page, status=303)


class LogoutHandler(PageHandler):
    """POST /admin/logout: the operator's tokens stop working (a copied cookie too) and the cookie is expired (a
    form post, so another site cannot log anyone out)."""

    public = True

    async def post(self):
        token = login_cookie.load(self)
        if token is not None:
            await auth.end_operator_sessions(self.ctx, token)
        login_cookie.forget(self)
        self.redirect("/admin/login", status=303)
