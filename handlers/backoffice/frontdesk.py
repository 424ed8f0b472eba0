"""The front desk's pages: the reschedule dialog of a paid order (立即预约 on SOLD_OUT's alternatives) and
attendance on a started session's roster (admin, staff)."""
from __future__ import annotations

import errors
from services.backoffice import queries
from services.frontdesk import attendance, reschedule
from services.orders import schedules

from . import forms
from .base import PageHandler


class RescheduleDialogHandler(PageHandler):
    """GET /admin/orders/{order_id}/reschedule: the upcoming sessions with a seat; POST moves the booking."""

    rights = {"GET": "frontdesk", "POST": "frontdesk"}

    async def get(self, order_id):
        story = await queries.order_story(order_id, self.operator.role)
        await self.dialog(story, "form")

    async def post(self, order_id):
        story = await queries.order_story(order_id, self.operator.role)
        typed = self.form("course_schedule_id")
        try:
            target = forms.whole_number(typed, "course_schedule_id", "课程")
            moved = await reschedule.reschedule(self.ctx, story["order_id"], {"course_schedule_id": target},
                                                self.operator_actor(), self.operator.role)
        except errors.ServiceError as e:
            if e.status >= 500:
                raise
            await self.dialog(story, "form", status=e.status, error=e.message,
                              alternatives=e.extra.get("alternatives"))
            return
        self.set_header("HX-Trigger", "story-changed")  # the order page redraws its story
        await self.dialog(story, "done", moved=moved)

    async def dialog(self, story, step, status=200, error=None, alternatives=None, moved=None):
        """The dialog alone for htmx (into #dialog), or as a page of its own without it."""
        choices = [s for s in await schedules.list_schedules(self.ctx.settings, upcoming_only=True)
                   if s["remaining"] > 0 and s["id"] != story["schedule"]["id"]]
        self.show("reschedule.html", "_reschedule_dialog.html", "dialog", status, story=story, step=step,
                  error=error, choices=choices, alternatives=alternatives, moved=moved,
                  movable=story["status"] == "paid" and (story["reservation"] or {}).get("status") == "confirmed")


class AttendanceHandler(PageHandler):
    """POST /admin/schedules/{id}/attendance (admin, staff): one seat marked 到课 / 爽约, or cleared."""

    rights = {"POST": "frontdesk"}

    async def post(self, schedule_id):
        value = self.form("attendance") or None
        try:
            await attendance.mark(self.ctx, self.form("reservation_id"), {"attendance": value},
                                  self.operator_actor())
        except errors.ServiceError as e:
            if e.status >= 500:
                raise
            self.redirect(f"/admin/schedules/{int(schedule_id)}?attendance_error={e.code}", status=303)
            return
        if self.is_htmx:
            roster = await queries.roster(int(schedule_id), {})
            schedule = await schedules.get_schedule(self.ctx.settings, int(schedule_id))
            self.render("_roster.html", roster=roster, schedule=schedule, started=schedules.has_started(schedule))
            return
        self.redirect(f"/admin/schedules/{int(schedule_id)}?saved=attendance", status=303)
