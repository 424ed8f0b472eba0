"""What the API and the pages show of the reconciliation: a day's last run, the days, the discrepancies waiting for a
decision, and the figures the metrics and the home page's banner read."""
from __future__ import annotations

import datetime as dt

import errors
from models import BillDay, BillDiscrepancy, BillRun, Operator, database, utcnow
from telemetry import metrics

from ..formats import beijing, iso
from ..paging import decode_cursor, encode_cursor, parse_limit
from .reconcile import bill_day_start, parse_day, reconcile
from .terms import CATEGORIES, COMPARED


def discrepancy(d, operators=None) -> dict:
    """The contract's discrepancy object."""
    by = (operators or {}).get(d.resolved_by_id) if d.resolved_by_id else None
    return {
        "id": d.id, "kind": d.kind, "category": d.category, "out_trade_no": d.out_trade_no,
        "out_refund_no": d.out_refund_no, "transaction_id": d.transaction_id, "wechat_status": d.wechat_status,
        "ledger_status": d.ledger_status, "wechat_amount_fen": d.wechat_amount_fen,
        "ledger_amount_fen": d.ledger_amount_fen, "resolution": d.resolution,
        "resolved_by": {"id": by.id, "username": by.username} if by is not None else None, "note": d.note,
    }


async def operators_of(rows) -> dict:
    """{id: operator} of the operators who decided these discrepancies."""
    ids = {d.resolved_by_id for d in rows if d.resolved_by_id}
    if not ids:
        return {}
    return {o.id: o for o in await Operator.select(Operator.id, Operator.username).where(
        Operator.id.in_(list(ids))).aio_execute()}


async def discrepancies_of(run) -> list:
    """The discrepancy rows a run found (mended ones of its day included); none for a run that compared nothing."""
    if run.status not in COMPARED:
        return []
    return list(await BillDiscrepancy.select().where(BillDiscrepancy.last_run_id == run.id)
                .order_by(BillDiscrepancy.id).aio_execute())


async def reconciliation(run, rows=None) -> dict:
    """The contract's reconciliation object of a run."""
    rows = await discrepancies_of(run) if rows is None else rows
    operators = await operators_of(rows)
    return {
        "bill_date": run.bill_date.isoformat(), "status": run.status, "reconciled_at": iso(run.reconciled_at),
        "wechat": {"payments": run.wechat_payments, "payments_fen": run.wechat_payments_fen,
                   "refunds": run.wechat_refunds, "refunds_fen": run.wechat_refunds_fen,
                   "fees_fen": run.wechat_fees_fen},
        "ledger": {"payments": run.ledger_payments, "payments_fen": run.ledger_payments_fen,
                   "refunds": run.ledger_refunds, "refunds_fen": run.ledger_refunds_fen},
        "discrepancies": [discrepancy(d, operators) for d in rows],
    }


async def last_run(day) -> BillRun | None:
    """The day's last finished run."""
    row = await BillDay.select(BillDay.last_run_id).where(BillDay.bill_date == day).aio_first()
    if row is None or row.last_run_id is None:
        return None
    return await BillRun.select().where(BillRun.id == row.last_run_id).aio_first()


async def day_view(text) -> dict:
    """GET /api/v1/admin/bills/{bill_date}: the day's last reconciliation (404 before any)."""
    run = await last_run(parse_day(text, recent=False))
    if run is None:
        raise errors.not_found("该日尚未对账")
    return await reconciliation(run)


async def reconcile_now(ctx, text, operator, actor) -> dict:
    """POST /api/v1/admin/bills/{bill_date}/reconcile: reconcile the day now; its reconciliation, whatever its
    status."""
    return await reconciliation(await reconcile(ctx, parse_day(text), actor, operator))


async def list_days(args) -> dict:
    """GET /api/v1/admin/bills: the last reconciliation of each day, newest day first (paged by day)."""
    limit = parse_limit(args.get("limit"))
    before = decode_cursor(args.get("cursor"))  # the ordinal of the last day of the previous page
    query = BillDay.select().where(BillDay.last_run_id.is_null(False))
    if before is not None:
        query = query.where(BillDay.bill_date < dt.date.fromordinal(min(before, dt.date.max.toordinal())))
    days = list(await query.order_by(BillDay.bill_date.desc()).limit(limit + 1).aio_execute())
    more = len(days) > limit
    days = days[:limit]
    runs = {r.id: r for r in await BillRun.select().where(
        BillRun.id.in_([d.last_run_id for d in days] or [0])).aio_execute()}
    items = [await reconciliation(runs[d.last_run_id]) for d in days if d.last_run_id in runs]
    return {"items": items, "next_cursor": encode_cursor(days[-1].bill_date.toordinal()) if more and days else None}


async def runs_of(day, limit=20) -> list:
    """The day's runs, newest first (the day page's history)."""
    return list(await BillRun.select().where(BillRun.bill_date == day).order_by(BillRun.id.desc())
                .limit(limit).aio_execute())


async def last_compared(day):
    """(run, discrepancy rows) of the day's last run that compared the bill with the ledger, or (None, [])."""
    row = await BillDay.select(BillDay.compared_run_id).where(BillDay.bill_date == day).aio_first()
    run = await BillRun.select().where(BillRun.id == row.compared_run_id).aio_first() \
        if row is not None and row.compared_run_id else None
    return (run, await discrepancies_of(run)) if run is not None else (None, [])


async def every_discrepancy_of(day) -> list:
    """Every discrepancy ever recorded for the day (nothing is deleted), oldest first."""
    return list(await BillDiscrepancy.select().where(BillDiscrepancy.bill_date == day)
                .order_by(BillDiscrepancy.id).aio_execute())


_UNDECIDED = ("SELECT d.`category`, d.`bill_date`, COUNT(*) FROM `bill_discrepancies` d JOIN `bill_days` b "
              "ON b.`bill_date` = d.`bill_date` AND b.`compared_run_id` = d.`last_run_id` "
              "WHERE d.`resolution` IS NULL GROUP BY d.`category`, d.`bill_date`")


async def _rows(sql, params=()):
    async def fetch(db, cursor):
        return await cursor.fetchall()

    return await database.aio_execute_sql(sql, params, fetch_results=fetch)


async def undecided() -> dict:
    """{"by_category": {category: n}, "days": [(day, n), ...]}: discrepancies found by each day's last comparison
    that still wait for a decision."""
    by_category, days = {c: 0 for c in CATEGORIES}, {}
    for category, day, count in await _rows(_UNDECIDED):
        by_category[category] = by_category.get(category, 0) + int(count)
        days[day] = days.get(day, 0) + int(count)
    return {"by_category": by_category, "days": sorted(days.items(), reverse=True)}


async def last_reconciled_day():
    """The latest day whose last comparison ran (matched, discrepancies or no_trades), or None."""
    row = await BillDay.select(BillDay.bill_date).where(BillDay.compared_run_id.is_null(False)).order_by(
        BillDay.bill_date.desc()).aio_first()
    return row.bill_date if row else None


async def gauges() -> dict:
    """The values of gym_bill_discrepancies (by category) and gym_bill_last_reconciled_day (a unix time: the
    start of that day in Asia/Shanghai, 0 before any)."""
    day = await last_reconciled_day()
    return {"discrepancies": (await undecided())["by_category"],
            "last_reconciled_day": bill_day_start(day) if day else 0.0}


async def refresh_gauges():
    """Set gym_bill_discrepancies and gym_bill_last_reconciled_day from the database (at each scrape)."""
    values = await gauges()
    for category, count in values["discrepancies"].items():
        metrics.BILL_DISCREPANCIES.labels(category).set(count)
    metrics.BILL_LAST_RECONCILED_DAY.set(values["last_reconciled_day"])


async def banner(settings, now=None) -> dict:
    """What the home page tells finance: days with undecided discrepancies, and yesterday's bill not reconciled
    by noon (Asia/Shanghai)."""
    now = now or utcnow()
    local = beijing(now)
    yesterday = local.date() - dt.timedelta(days=1)
    row = await BillDay.select(BillDay.compared_run_id, BillDay.status).where(
        BillDay.bill_date == yesterday).aio_first()
    late = local.hour >= 12 and (row is None or row.compared_run_id is None)
    return {"undecided_days": (await undecided())["days"], "yesterday": yesterday.isoformat(),
            "yesterday_not_reconciled": late, "yesterday_status": row.status if row else None}
