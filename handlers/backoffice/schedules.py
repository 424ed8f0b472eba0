"""Schedules (schedules): the list with capacity and seats left, creating one, changing one, and its roster."""
from __future__ import annotations

import errors
from services.backoffice import queries
from services.orders import alternatives, schedules

from services.waitlist import entries

from . import forms
from .base import PageHandler

ATTENDANCE_ERRORS = {"ATTENDANCE_NOT_ALLOWED": "只有已开始课程中已确认的座位可以登记到课", "NOT_FOUND": "预约不存在",
                     "INVALID_REQUEST": "登记的取值无效"}


class SchedulesHandler(PageHandler):
    """GET /admin/schedules (every role; upcoming ones, or `?all=1` every one, paged) and POST (admin, staff)."""

    rights = {"GET": "schedules.read", "POST": "schedules.write"}

    async def get(self):
        await self.page()

    async def post(self):
        typed = {"title": self.form("title"), "starts_at": self.form("starts_at"), "capacity": self.form("capacity")}
        try:
            body = {"title": typed["title"], "starts_at": forms.iso_from_local(typed["starts_at"], "starts_at"),
                    "capacity": forms.whole_number(typed["capacity"], "capacity", "名额")}
            created = await schedules.create_schedule(self.ctx, body, self.operator.id, self.operator_actor())
        except errors.ServiceError as e:
            if e.status >= 500:
                raise
            await self.page(status=e.status, error=e.message, typed=typed)
            return
        self.redirect(f"/admin/schedules/{created['id']}?saved=created", status=303)

    async def page(self, status=200, error=None, typed=None):
        everything = self.get_query_argument("all", "") == "1"
        if everything:  # the operators' list, as the API pages it: every schedule, newest first
            found = await schedules.page_schedules(self.ctx.settings, self.args())
        else:  # what the front desk works with: the schedules to come, by start time
            found = {"items": await schedules.list_schedules(self.ctx.settings, upcoming_only=True),
                     "next_cursor": None}
        self.set_status(status)
        self.render("schedules.html", found=found, everything=everything, error=error,
                    typed=typed or {"title": "", "starts_at": "", "capacity": ""})


class ScheduleHandler(PageHandler):
    """GET /admin/schedules/{id}: the schedule and its roster (paged); POST (admin, staff): new capacity or title."""

    rights = {"GET": "roster.read", "POST": "schedules.write"}

    async def get(self, schedule_id):
        await self.page(int(schedule_id))

    async def post(self, schedule_id):
        typed = {"title": self.form("title"), "capacity": self.form("capacity")}
        try:
            body = {"title": typed["title"] or None,
                    "capacity": forms.whole_number(typed["capacity"], "capacity", "名额")}
            await schedules.change_schedule(self.ctx, int(schedule_id), body, self.operator_actor())
        except errors.ServiceError as e:
            if e.status >= 500 or e.status == 404:
                raise
            await self.page(int(schedule_id), status=e.status, error=e.message, typed=typed)
            return
        self.redirect(f"/admin/schedules/{int(schedule_id)}?saved=changed", status=303)

    async def page(self, schedule_id, status=200, error=None, typed=None):
        schedule = await schedules.get_schedule(self.ctx.settings, schedule_id)
        roster = await queries.roster(schedule_id, self.args())
        line = await entries.schedule_line(schedule_id)
        failed = self.get_query_argument("attendance_error", None)
        # A full session: the front desk can point a parent to the nearest ones with a seat (SOLD_OUT's list).
        others = await alternatives.nearest(schedule_id) if schedule["remaining"] <= 0 else []
        self.show("schedule.html", "_roster.html", "roster", status, schedule=schedule, roster=roster, error=error,
                  alternatives=others, line=line, started=schedules.has_started(schedule),
                  attendance_error=ATTENDANCE_ERRORS.get(failed, "登记失败") if failed else None,
                  typed=typed or {"title": schedule["title"], "capacity": str(schedule["capacity"])},
                  saved=self.get_query_argument("saved", None), local_input=forms.local_input)
