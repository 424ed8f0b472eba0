"""The reconciliation's metrics on /metrics: gym_bill_discrepancies by category counts the discrepancies waiting for
a decision (found by each day's last reconciliation) and drops when finance decides one; gym_bill_last_reconciled_day
is the start (00:00 Asia/Shanghai) of the latest day reconciled."""
from __future__ import annotations

import datetime as dt

import pytest

from services.formats import CN
from tests.bills.books import DAYS, day_ago, reconcile
from tests.prometheus_text import samples, value


@pytest.fixture
def overrides():
    return {"RECONCILE_INTERVAL_SECONDS": "600"}


async def _scrape(api):
    status, text, _ = await api.call("GET", "/metrics")
    assert status == 200
    found = samples(text.decode())
    return {c: value(found, "gym_bill_discrepancies", category=c)
            for c in ("missing_in_ledger", "missing_at_wechat", "amount_mismatch")}, \
        value(found, "gym_bill_last_reconciled_day")


@pytest.mark.gen_test(timeout=60)
async def test_undecided_discrepancies_and_the_last_reconciled_day(api):
    finance = await api.admin_token("finance")
    day = day_ago(DAYS["metrics"])
    await api.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 4200, "time": "08:00:00"})
    await api.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "refund", "amount": 100, "time": "09:00:00"})
    before, _ = await _scrape(api)
    result = await reconcile(api, finance, day)
    assert [d["category"] for d in result["discrepancies"]] == ["missing_in_ledger", "missing_in_ledger"]
    during, last_day = await _scrape(api)
    assert during["missing_in_ledger"] == before["missing_in_ledger"] + 2
    assert during["amount_mismatch"] == before["amount_mismatch"]
    newest = (await api.call("GET", "/api/v1/admin/bills?limit=200", token=finance))[1]["items"]
    latest = max(dt.date.fromisoformat(r["bill_date"]) for r in newest
                 if r["status"] in ("matched", "discrepancies", "no_trades"))
    assert last_day == dt.datetime(latest.year, latest.month, latest.day, tzinfo=CN).timestamp() >= \
        dt.datetime(day.year, day.month, day.day, tzinfo=CN).timestamp()
    status, _, _ = await api.call("PATCH", f"/api/v1/admin/bills/discrepancies/{result['discrepancies'][0]['id']}",
                                  {"resolution": "accepted", "note": "核对无误"}, token=finance)
    assert status == 200
    after, _ = await _scrape(api)
    assert after["missing_in_ledger"] == during["missing_in_ledger"] - 1
