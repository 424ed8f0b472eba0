"""Operator accounts (admin only): the list, a new account, and a change of role, active flag or password."""
from __future__ import annotations

import errors
from services.accounts import operators

from .base import PageHandler

SAVED = {"created": "已创建账号", "changed": "已保存修改"}


class OperatorsHandler(PageHandler):
    """GET /admin/operators (paged) and POST: a new operator."""

    rights = {"GET": "operators", "POST": "operators"}

    async def get(self):
        await self.page()

    async def post(self):
        typed = {"username": self.form("username"), "role": self.form("role")}
        try:
            await operators.create_operator(self.ctx, {**typed, "password": self.get_body_argument("password", "")},
                                            self.operator_actor())
        except errors.ServiceError as e:
            if e.status >= 500:
                raise
            await self.page(status=e.status, error=e.message, typed=typed)
            return
        self.redirect("/admin/operators?saved=created", status=303)

    async def page(self, status=200, error=None, typed=None):
        found = await operators.list_operators(self.args())
        self.set_status(status)
        self.render("operators.html", found=found, error=error, typed=typed or {"username": "", "role": "staff"},
                    saved=SAVED.get(self.get_query_argument("saved", "")))


class OperatorHandler(OperatorsHandler):
    """POST /admin/operators/{id}: role and active flag, and a new password when one is typed."""

    rights = {"POST": "operators"}

    async def post(self, operator_id):
        body = {"role": self.form("role"), "active": self.form("active") == "1"}
        password = self.get_body_argument("password", "")
        if password:
            body["password"] = password
        try:
            await operators.change_operator(self.ctx, int(operator_id), body, self.operator_actor())
        except errors.ServiceError as e:
            if e.status >= 500 or e.status == 404:
                raise
            await self.page(status=e.status, error=e.message)
            return
        self.redirect("/admin/operators?saved=changed", status=303)
