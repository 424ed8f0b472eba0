"""对账 (admin, finance): the reconciled days, a day's page (WeChat Pay's totals and the ledger's side by side, the
discrepancies with their decision forms, the runs), reconciling a day, the day report, and the CSV exports."""
from __future__ import annotations

import datetime as dt

import errors
from services.bills import decisions, exports, report, views
from services.bills.reconcile import DAYS_BACK, parse_day, reconcile
from services.bills.terms import CATEGORIES, COMPARED, DECISIONS
from services.formats import beijing_today

from ..streaming import stream
from .base import PageHandler

SAVED = {"reconciled": "已对账", "decided": "已记录处理结果"}


class BillsHandler(PageHandler):
    """GET /admin/bills: the days with their last reconciliation; POST: reconcile the day typed."""

    rights = {"GET": "bills", "POST": "bills"}

    async def get(self):
        await self.page()

    async def post(self):
        try:
            day = parse_day(self.form("bill_date"))
        except errors.ServiceError as e:
            await self.page(status=e.status, error=e.message)
            return
        await reconcile(self.ctx, day, self.operator_actor(), self.operator)
        self.redirect(f"/admin/bills/{day}?saved=reconciled", status=303)

    async def page(self, status=200, error=None):
        try:
            found = await views.list_days(self.args())
        except errors.ServiceError as e:
            if e.status != 400:
                raise
            found, error, status = {"items": [], "next_cursor": None}, e.message, 400
        today = beijing_today()
        self.set_status(status)
        self.render("bills.html", found=found, error=error, undecided=await views.undecided(), today=today,
                    yesterday=today - dt.timedelta(days=1), earliest=today - dt.timedelta(days=DAYS_BACK))


class BillDayHandler(PageHandler):
    """GET /admin/bills/{day}: the day's reconciliation; POST: reconcile it again, or decide a discrepancy."""

    rights = {"GET": "bills", "POST": "bills"}

    async def get(self, text):
        await self.page(parse_day(text, recent=False))

    async def post(self, text):
        day = parse_day(text)
        if self.form("action") == "decide":
            body = {"resolution": self.form("resolution"), "note": self.form("note")}
            try:
                await decisions.decide(self.ctx, int(self.form("discrepancy_id") or 0), body, self.operator,
                                       self.operator_actor())
            except errors.ServiceError as e:
                if e.status >= 500:
                    raise
                await self.page(day, status=e.status, error=e.message)
                return
            self.redirect(f"/admin/bills/{day}?saved=decided", status=303)
            return
        await reconcile(self.ctx, day, self.operator_actor(), self.operator)
        self.redirect(f"/admin/bills/{day}?saved=reconciled", status=303)

    async def page(self, day, status=200, error=None):
        run = await views.last_run(day)
        reconciliation = await views.reconciliation(run) if run is not None else None
        compared = None
        if run is not None and run.status not in COMPARED:  # nothing compared now: what the last comparison found
            compared_run, rows = await views.last_compared(day)
            compared = await views.reconciliation(compared_run, rows) if compared_run is not None else None
        listed = (compared or reconciliation or {"discrepancies": []})["discrepancies"]
        shown = {d["id"] for d in listed}
        earlier = [d for d in await views.every_discrepancy_of(day) if d.id not in shown]
        self.set_status(status)
        self.render("bill_day.html", day=day, r=reconciliation, compared=compared, listed=listed,
                    runs=await views.runs_of(day),
                    earlier=[views.discrepancy(d, await views.operators_of([d])) for d in earlier], error=error,
                    decisions=DECISIONS, categories=CATEGORIES, saved=SAVED.get(self.get_query_argument("saved", "")))


class DayReportHandler(PageHandler):
    """GET /admin/bills/{day}/report: the day report (payments, refunds, fees, net, bookings)."""

    rights = {"GET": "bills"}

    async def get(self, text):
        day = parse_day(text, recent=False)
        self.render("bill_report.html", day=day, rep=await report.day_report(day))


class ExportHandler(PageHandler):
    """GET /admin/exports/{orders|refunds}.csv?from=&to=: the API's exports, for the logged-in operator."""

    rights = {"GET": "exports"}

    async def get(self, kind):
        name, chunks = exports.export(kind, self.args("from", "to"))
        self.set_header("Content-Type", "text/csv; charset=utf-8")
        self.set_header("Content-Disposition", f'attachment; filename="{name}"')
        await stream(self, chunks)
