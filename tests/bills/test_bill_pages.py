"""The back office's 对账 pages through HTTP with a cookie jar: the days, reconciling a day from the page, the day's
totals side by side, a discrepancy decided with its form (a note required), the day report agreeing with the
reconciliation, the exports downloaded, the home page's banner, and the roles."""
from __future__ import annotations

import datetime as dt
import re

import pytest

from services.formats import CN
from tests.backoffice.test_backoffice_pages import logged_in
from tests.bills.books import DAYS, at, day_ago, pay_at, reconcile


@pytest.fixture
def overrides():
    return {"DEV_MODE": "0", "RECONCILE_INTERVAL_SECONDS": "600"}


def _cell(page, row_id):
    match = re.search(rf'<tr id="{row_id}">(.*?)</tr>', page.text, re.S)
    assert match, row_id
    return re.findall(r"<td>([^<]*)</td>", match.group(1))


@pytest.mark.gen_test(timeout=120)
async def test_a_day_reconciled_decided_and_reported_from_the_pages(api, base_url):
    day = day_ago(DAYS["pages"])
    await pay_at(api, at(day, "09:30:00"))
    await pay_at(api, at(day, "18:00:00"))
    foreign = (await api.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 880,
                                                                        "time": "12:00:00"}))["row"]
    browser, _ = await logged_in(base_url, "finance")
    listing = await browser.get("/admin/bills")
    assert listing.status == 200 and 'href="/admin/bills"' in listing.text and 'id="reconcile-form"' in listing.text
    done = await browser.post("/admin/bills", {"_xsrf": listing.xsrf(), "bill_date": day.isoformat()})
    assert done.status == 303 and done.location == f"/admin/bills/{day}?saved=reconciled"

    page = await browser.get(done.location)
    assert page.status == 200 and 'data-status="discrepancies"' in page.text and 'id="saved"' in page.text
    assert _cell(page, "totals-wechat") == ["3", "¥408.80", "0", "¥0.00", "¥2.45"]  # 1.20 + 1.20 + 0.05 fees
    assert _cell(page, "totals-ledger")[:4] == ["2", "¥400.00", "0", "¥0.00"]
    row = re.search(r'<tr data-discrepancy-id="(\d+)" data-category="missing_in_ledger" data-resolution="">',
                    page.text)
    assert row and foreign["out_trade_no"] in page.text
    home = await browser.get("/admin/")
    assert f'class="banner-undecided" data-bill-date="{day}"' in home.text, "the banner names the undecided day"

    refused = await browser.post(f"/admin/bills/{day}", {"_xsrf": page.xsrf(), "action": "decide",
                                                         "discrepancy_id": row.group(1), "resolution": "accepted",
                                                         "note": ""})
    assert refused.status == 400 and "note 必填" in refused.text
    decided = await browser.post(f"/admin/bills/{day}", {"_xsrf": page.xsrf(), "action": "decide",
                                                         "discrepancy_id": row.group(1), "resolution": "written_off",
                                                         "note": "外来交易，已与微信支付核对"})
    assert decided.status == 303 and decided.location == f"/admin/bills/{day}?saved=decided"
    page = await browser.get(decided.location)
    assert f'data-discrepancy-id="{row.group(1)}" data-category="missing_in_ledger" data-resolution="written_off"' \
        in page.text and "外来交易，已与微信支付核对" in page.text
    home = await browser.get("/admin/")
    assert f'data-bill-date="{day}"' not in home.text, "decided: the day leaves the banner"

    report = await browser.get(f"/admin/bills/{day}/report")
    assert report.status == 200
    figures = dict(re.findall(r'id="rep-(\w+)">([^<]+)<', report.text))
    assert figures["payments"] == "2 笔 · ¥400.00" and figures["refunds"] == "0 笔 · ¥0.00"
    assert figures["fees"] == "¥2.45" and figures["net"] == "¥397.55" and figures["bookings"] == "2"
    reconciliation = await reconcile(api, await api.admin_token("finance"), day)
    assert reconciliation["ledger"]["payments_fen"] == 40000, "the report's payments are the reconciliation's ledger"

    assert (await browser.get("/admin/bills/2026-13-45")).status == 400
    csv_page = await browser.get(f"/admin/exports/orders.csv?from={day}&to={day}")
    assert csv_page.status == 200 and csv_page.text.startswith("\ufeff")
    assert csv_page.headers["Content-Type"] == "text/csv; charset=utf-8"


@pytest.mark.gen_test(timeout=60)
async def test_yesterday_not_reconciled_by_noon_is_on_the_banner_until_it_is(api, base_url):
    finance = await api.admin_token("finance")
    yesterday = (dt.datetime.now(CN) - dt.timedelta(days=1)).date()
    status, last, _ = await api.call("GET", f"/api/v1/admin/bills/{yesterday}", token=finance)
    compared = status == 200 and last["status"] in ("matched", "discrepancies", "no_trades")
    browser, _ = await logged_in(base_url, "finance")
    home = await browser.get("/admin/")
    after_noon = dt.datetime.now(CN).hour >= 12
    assert ('id="banner-not-reconciled"' in home.text) == (after_noon and not compared)
    result = await reconcile(api, finance, yesterday)
    assert result["status"] in ("matched", "discrepancies", "no_trades")
    home = await browser.get("/admin/")
    assert 'id="banner-not-reconciled"' not in home.text


@pytest.mark.gen_test(timeout=60)
async def test_staff_have_no_bill_pages(api, base_url):
    staff, _ = await logged_in(base_url, "staff")
    home = await staff.get("/admin/")
    assert 'href="/admin/bills"' not in home.text and 'id="bill-banner"' not in home.text
    day = day_ago(DAYS["pages"]).isoformat()
    for path in ("/admin/bills", f"/admin/bills/{day}", f"/admin/bills/{day}/report", "/admin/exports/orders.csv",
                 "/admin/exports/refunds.csv"):
        page = await staff.get(path)
        assert page.status == 403, path


@pytest.mark.gen_test(timeout=60)
async def test_a_failed_rerun_still_shows_what_the_last_comparison_found(api, base_url):
    day = day_ago(DAYS["report"])
    foreign = (await api.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 990,
                                                                        "time": "15:00:00"}))["row"]
    finance = await api.admin_token("finance")
    first = await reconcile(api, finance, day)
    assert first["status"] == "discrepancies"
    await api.control("POST", f"/sandbox/bills/{day}", {"corrupt_download": True})
    assert (await reconcile(api, finance, day))["status"] == "failed"
    browser, _ = await logged_in(base_url, "finance")
    page = await browser.get(f"/admin/bills/{day}")
    assert 'data-status="failed"' in page.text and 'id="from-last-comparison"' in page.text
    assert foreign["out_trade_no"] in page.text and 'class="row-form decide"' in page.text
    home = await browser.get("/admin/")
    assert f'data-bill-date="{day}"' in home.text, "still undecided: a failed run changes nothing"
