"""Operator routes."""
from __future__ import annotations

import errors
from services import auth, ratelimit, schedules

from .base import BaseHandler


class AdminBase(BaseHandler):
    """An operator route: the token must be an operator's with one of `roles`."""

    roles = auth.ROLES

    async def current_operator(self):
        """The operator of this request; 401 / 403 otherwise."""
        return await auth.operator_for_token(self.ctx, self.bearer_token(), self.roles)


class AdminLoginHandler(BaseHandler):
    """POST /api/v1/admin/login."""

    async def post(self):
        await ratelimit.check(self.ctx, "admin-login", self.client_ip)
        self.write_json(await auth.login_operator(self.ctx, self.json_body()))


class AdminSchedulesHandler(AdminBase):
    """GET and POST /api/v1/admin/schedules."""

    async def get(self):
        await self.current_operator()
        self.write_json({"items": await schedules.list_schedules(self.ctx.settings, upcoming_only=False)})

    async def post(self):
        operator = await self.current_operator()
        if operator.role not in ("admin", "staff"):
            raise errors.forbidden("当前角色无权创建课程")
        self.write_json(await schedules.create_schedule(self.ctx.settings, self.json_body(), operator.id), 201)


class AdminScheduleHandler(AdminBase):
    """PATCH /api/v1/admin/schedules/{id}: change the capacity."""

    roles = ("admin", "staff")

    async def patch(self, schedule_id):
        operator = await self.current_operator()
        actor = self.actor("operator", operator_id=operator.id)
        self.write_json(await schedules.change_capacity(self.ctx, int(schedule_id), self.json_body(), actor))
