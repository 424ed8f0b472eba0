"""Two processes reconciling the same day at once: one run, one effect, the same answer to both.

Each `python server.py` is asked to reconcile the day while the other's run is under way (the sandbox holds the
bill's download for a moment). The day's lease (bill_days) lets one run; the other waits for it and answers that
run. The control runs two reconciliations of one day with the lease taken out (a stand-in that always claims):
both fetch the bill, compare and record a run (what the lifecycle's own guards still keep from happening twice, the
mend, is not what the lease is for).
"""
from __future__ import annotations

import asyncio

import pytest

from models import BillRun, PaymentAuditLog, PaymentTransaction
from services import audit
from services.bills import reconcile as reconciliation
from tests.api import Api
from tests.bills.books import DAYS, at, by_ref, day_ago, order_row, pay_at
from tests.harness import ServiceProcess

DOWNLOAD = "/v3/billdownload/file"


@pytest.fixture
def overrides():
    return {"RECONCILE_INTERVAL_SECONDS": "600"}  # the bill alone finds the unnotified payment


async def _bill_asks(api, day):
    """The tradebill requests the sandbox answered for `day`."""
    items = (await api.control("GET", "/sandbox/requests?path_prefix=/v3/bill/tradebill"))["items"]
    return [r for r in items if f"bill_date={day}" in r["uri"]]


@pytest.mark.gen_test(timeout=120)
async def test_two_processes_reconciling_one_day_at_once_make_one_run(service_env, sandbox, db):
    env = dict(service_env)
    env.pop("PORT")
    a, b = ServiceProcess(env, name="bills-a"), ServiceProcess(env, name="bills-b")
    try:
        api_a, api_b = Api(a.url, sandbox), Api(b.url, sandbox)
        day = day_ago(DAYS["race"])
        _, order = await pay_at(api_a, at(day, "10:00:00"), notify=False)
        finance = await api_a.admin_token("finance")
        await api_a.control("POST", "/sandbox/faults", {"path_prefix": DOWNLOAD, "latency_ms": 1500, "count": 1})
        path = f"/api/v1/admin/bills/{day}/reconcile"
        (status_a, body_a, _), (status_b, body_b, _) = await asyncio.gather(
            api_a.call("POST", path, token=finance), api_b.call("POST", path, token=finance))
        assert status_a == status_b == 200
        assert body_a == body_b, "the second asker is answered the run it waited for"
        [found] = by_ref(body_a, out_trade_no=order["order_id"])
        assert found["resolution"] == "mended"
        assert len(await _bill_asks(api_a, day)) == 1, "WeChat Pay was asked for the bill once"
        runs = list(await BillRun.select().where(BillRun.bill_date == day).aio_execute())
        assert [r.status for r in runs] == ["discrepancies"]
        row = await order_row(order["order_id"])
        assert await PaymentTransaction.select().where(PaymentTransaction.order == row.id).aio_count() == 1
        assert await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id) & (
            PaymentAuditLog.action_type == "bill_discrepancy_mended")).aio_count() == 1
    finally:
        a.stop()
        b.stop()


class NoLease:
    """The control's stand-in for the day's lease: every claim succeeds, every fencing check passes."""

    def __init__(self, day):
        self.day = day

    async def try_claim(self):
        return True

    def held(self):
        from peewee import SQL

        return SQL("1 = 1")

    def start_heartbeat(self):
        pass

    async def end(self):
        pass


@pytest.mark.gen_test(timeout=120)
async def test_control_without_the_lease_both_runs_fetch_and_compare(api, ctx, monkeypatch):
    day = day_ago(DAYS["race_control"])
    await pay_at(api, at(day, "10:00:00"), notify=False)
    await api.control("POST", "/sandbox/faults", {"path_prefix": DOWNLOAD, "latency_ms": 1000, "count": 2})
    monkeypatch.setattr(reconciliation, "day_lease", NoLease)
    runs = await asyncio.gather(reconciliation.reconcile(ctx, day, audit.SYSTEM),
                                reconciliation.reconcile(ctx, day, audit.SYSTEM))
    assert len(await _bill_asks(api, day)) == 2, "without the lease both runs fetched the bill"
    assert runs[0].id != runs[1].id and await BillRun.select().where(BillRun.bill_date == day).aio_count() == 2
