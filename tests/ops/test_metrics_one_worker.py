"""WORKERS=1 (the default, and `make run`): every counter and gauge of the contract is on /metrics after a payment,
a refused notification and a refund, and the back office's 运行指标 show the figures instead of "—".

One process is the case the multiprocess directory bug hid: the directory was emptied after the process had opened
its counter files, so /metrics showed only the histograms made later (telemetry/metrics.py)."""
from __future__ import annotations

import re

import pytest

from models import PaymentOrder

from tests.api import Api, eventually
from tests.backoffice.test_backoffice_pages import logged_in
from tests.forge import Forger
from tests.harness import ServiceProcess
from tests.prometheus_text import samples, value


@pytest.fixture
def one_worker(service_env, db, tmp_path):
    # No jobs: its figures are this test's alone (the session's database holds other tests' lapsed holds, which a
    # reconciler would release late); the payment and the refund come by notification.
    env = {**service_env, "WORKERS": "1", "RUN_JOBS": "false", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    env.pop("PORT")
    proc = ServiceProcess(env, name="one-worker")
    yield proc
    proc.stop()


@pytest.mark.gen_test(timeout=120)
async def test_one_process_exports_every_counter_and_gauge_and_the_home_page_shows_them(one_worker, sandbox):
    api = Api(one_worker.url, sandbox)
    _, _, _, order = await api.paid_order()
    forger = Forger(sandbox.state_dir, sandbox.env)
    forged = forger.body(forger.transaction(order["order_id"]))
    status, body, _ = await api.call("POST", "/api/v1/payment/wxpay/callback", raw=forged,
                                     headers=forger.headers(forged, key=Forger.stranger_key()))
    assert status == 401 and body["code"] == "FAIL"
    finance = await api.admin_token("finance")
    status, refund = await api.refund(finance, order["order_id"], 20000)
    assert status == 201, refund

    async def refunded():
        status, story, _ = await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=finance)
        return story["status"] == "refunded" and story["refunds"][0]["status"] == "SUCCESS"

    await eventually(refunded, timeout=30, what="the refund to succeed and the order to be refunded")

    status, text, _ = await api.call("GET", "/metrics")
    assert status == 200
    found = samples(text.decode())
    assert value(found, "gym_payments_total", source="notify") == 1
    assert value(found, "gym_payments_total", source="query") == 0
    assert value(found, "gym_notifications_total", kind="payment", outcome="applied") == 1
    assert value(found, "gym_notifications_total", kind="payment", outcome="refused") == 1
    assert value(found, "gym_notifications_total", kind="refund", outcome="applied") == 1
    assert value(found, "gym_refunds_total", status="SUCCESS") == 1
    assert value(found, "gym_refunds_total", status="CLOSED") == 0
    # A gauge read from the database at the scrape (the session's database holds other tests' orders too).
    assert value(found, "gym_refund_required_orders") == await PaymentOrder.select().where(
        PaymentOrder.status == "refund_required").aio_count()
    assert value(found, "gym_seat_releases_total", on_time="true") == 1  # the refund freed the seat at once
    assert value(found, "gym_http_requests_total", route="/api/v1/payment/orders/create", method="POST",
                 status="201") == 1
    assert value(found, "gym_http_requests_total", route="/api/v1/payment/wxpay/callback", method="POST",
                 status="401") == 1
    assert value(found, "gym_http_request_duration_seconds_count", route="/api/v1/payment/wxpay/create",
                 method="POST") == 1
    routes = {dict(labels)["route"] for name, labels in found if name == "gym_http_requests_total"}
    assert not any(order["order_id"] in route for route in routes), "route patterns, never raw paths"

    browser, _ = await logged_in(one_worker.url, "finance")
    home = await browser.get("/admin/")
    assert home.status == 200
    figures = dict(re.findall(r'<span class="label">([^<]+)</span><strong>([^<]+)</strong>',
                              home.text[home.text.index('id="business-figures"'):]))
    assert figures["支付成功率"] == "100.00%"
    assert figures["掉单率（靠查询发现的支付）"] == "0.00%"
    assert figures["名额按时释放"] == "100.00%"
    assert figures["支付通知处理率（未被拒收的占比）"] == "66.67%"  # 3 notifications, 1 refused
