"""Issue 14's "done when", clicked through after a real `make run` in headless Chromium: a person pays a few orders
in the demo, opens today's 对账 page, reconciles it and sees it matched; then makes the sandbox add a foreign row,
reconciles again, sees it flagged for a decision (on the day's page and the home page's banner) and records one.

The stack is a second `make run` of its own (tests/make_run.py): today's bill and ledger hold this test's payments
only, whatever the rest of the suite pays today in the shared sandbox and database."""
from __future__ import annotations

import asyncio
import json
import os

import pytest

from tests.harness import VAR, http_json
from tests.browser.node import run_script
from tests.make_run import MakeRunStack

SHOTS = os.path.join(VAR, "test")
PAYMENTS = 3
FOREIGN_FEN = 8800


@pytest.fixture
def stack():
    made = MakeRunStack()
    made.start()
    yield made
    made.close()


async def _books(node_packages, stack):
    os.makedirs(SHOTS, exist_ok=True)
    args = {"username": "admin", "password": stack.admin_password(), "payments": PAYMENTS,
            "foreignAmount": FOREIGN_FEN}
    return await run_script(node_packages, "books.js", stack.url, stack.sandbox_url, SHOTS, json.dumps(args),
                            timeout=150)


def test_pay_in_the_demo_reconcile_today_matched_then_a_foreign_row_flagged_and_decided(node_packages, stack):
    page = asyncio.run(_books(node_packages, stack))

    day = page["day"]
    assert page["prefilled"] == day, "the reconcile form offers today (Beijing) as the day"
    assert "按北京时间自然日" in page["listing"], "the page says which payments a day's bill holds"
    assert page["before"] == "尚未对账"
    total = f"¥{PAYMENTS * 200}.00"
    first = page["first"]
    assert first["status"] == "matched" and first["label"] == "已对平", first
    assert first["wechat"][:2] == [str(PAYMENTS), total] and first["ledger"][:2] == [str(PAYMENTS), total], first
    assert first["discrepancies"] == [] and first["noDiscrepancies"] == 1

    foreign = page["foreign"]
    assert foreign["billUrl"].endswith(f"/sandbox/bill?date={day}") and foreign["status"] == "SUCCESS"
    second = page["second"]
    assert second["status"] == "discrepancies", second
    assert second["wechat"][:2] == [str(PAYMENTS + 1), f"¥{PAYMENTS * 200 + FOREIGN_FEN // 100}.00"]
    assert second["ledger"][:2] == [str(PAYMENTS), total], "nothing confirms a foreign row: the ledger is unchanged"
    [flagged] = second["discrepancies"]
    assert flagged["category"] == "missing_in_ledger" and flagged["resolution"] == "" and flagged["form"], flagged
    assert second["decideHint"] == 1 and page["decided"]["decideHint"] == 0, "the page says what a decision is"
    assert foreign["outTradeNo"] in flagged["text"] and "¥88.00" in flagged["text"]
    assert day in page["banner"] and "1 条对账差异待财务处理" in page["banner"]

    [decided] = page["decided"]["discrepancies"]
    assert decided["id"] == flagged["id"] and decided["resolution"] == "written_off"
    assert "外来交易，已与微信支付核对" in decided["text"] and "admin" in decided["text"]
    assert page["bannerAfter"] == 0, "decided: the home page no longer asks for it"

    # The operators' API tells the same story of the day.
    _, login, _ = http_json("POST", f"{stack.url}/api/v1/admin/login",
                            {"username": "admin", "password": stack.admin_password()})
    status, body, _ = http_json("GET", f"{stack.url}/api/v1/admin/bills/{day}",
                                headers={"Authorization": f"Bearer {login['token']}"})
    assert status == 200 and body["status"] == "discrepancies"
    assert body["ledger"] == {"payments": PAYMENTS, "payments_fen": PAYMENTS * 20000, "refunds": 0, "refunds_fen": 0}
    [d] = body["discrepancies"]
    assert d["out_trade_no"] == foreign["outTradeNo"] and d["wechat_amount_fen"] == FOREIGN_FEN
    assert d["resolution"] == "written_off" and d["resolved_by"]["username"] == "admin"
    assert sorted(page["orders"]) == sorted(set(page["orders"])) and len(page["orders"]) == PAYMENTS
