"""MariaDB stopped for 10 s under load (a private server, never the shared one): clear 503s, nothing lost."""
import asyncio
import json
import time

import pytest

import settings as settings_module
from models import PaymentOrder, close_database, open_database
from tests.api import Api, eventually
from tests.faults.conftest import migrate, service_env
from tests.faults.flows import (
    all_delivered, assert_invariants, assert_paid_exactly_once, inbox, notifications, orders_in_payment,
)
from tests.harness import MariaDBServer, private_sandbox

OUTAGE_SECONDS = 10
PAYING = 10
UNAVAILABLE = {"SERVICE_UNAVAILABLE", "PAYMENT_UNAVAILABLE"}


@pytest.fixture
def private_mariadb(io_loop):
    """A mariadbd of this test's own with a migrated database; the test process's models point at it."""
    server = MariaDBServer("outage-mariadb")
    url = server.create_database()
    migrate(url)
    io_loop.run_sync(lambda: open_database(settings_module.parse_database_url({"DATABASE_URL": url}), pool_max=3))
    yield server, url
    io_loop.run_sync(close_database)
    server.destroy()


@pytest.fixture
def outage_sandbox(request):
    """A sandbox of this test's own whose redeliveries come 500x faster than WeChat Pay's (the suite's shared one is
    100x): its schedule has tries 7.7 s, 11.3 s and 14.9 s after the first attempt, so a notification refused from
    the outage's start is redelivered soon after MariaDB is back; at 100x the next try after 8.4 s came at 20.4 s,
    and the test spent 10 s waiting for it. The schedule still lasts 173 s."""
    yield from private_sandbox("outage-sandbox", time_scale=0.002)


class Load:
    """Parents who keep logging in, booking, paying and cancelling; each answer recorded with how long it took."""

    def __init__(self, api, schedule_id):
        self.api = api
        self.schedule_id = schedule_id
        self.answers = []  # (what, status, body, started, seconds)
        self.running = True

    async def _timed(self, what, method, path, body=None, token=None):
        started = time.monotonic()
        status, data, _ = await self.api.call(method, path, body, token=token)
        self.answers.append((what, status, data, started, time.monotonic() - started))
        return status, data

    async def newcomers(self):
        """New parents logging in, one after another."""
        while self.running:
            code = (await self.api.control("POST", "/sandbox/wx/login", {}))["code"]
            await self._timed("login", "POST", "/api/v1/auth/login", {"code": code})

    async def parent(self, token):
        """A logged-in parent who books, starts paying and cancels, again and again, and reads the last order."""
        path = None
        while self.running:
            status, order = await self._timed("create", "POST", "/api/v1/payment/orders/create",
                                              {"course_schedule_id": self.schedule_id}, token)
            if status in (200, 201):
                path = f"/api/v1/payment/orders/{order['order_id']}"
                await self._timed("prepay", "POST", "/api/v1/payment/wxpay/create", {"order_id": order["order_id"]},
                                  token)
                await self._timed("cancel", "POST", path + "/cancel", {}, token)
            await self._timed("read", "GET", path, token=token)
            await self._timed("schedules", "GET", "/api/v1/courses/schedules")


@pytest.mark.gen_test(timeout=120)
async def test_mariadb_down_10s_under_load_answers_503_and_applies_every_redelivered_payment_once(
        private_mariadb, server_env, outage_sandbox, services, tmp_path):
    server, url = private_mariadb
    sandbox = outage_sandbox
    # The reconciler stays out of the way (60 s): what is paid here was paid by a redelivered notification.
    env = service_env(sandbox, url, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="60")
    service = services(env, "outage")
    api = Api(service.url, sandbox)
    sid = await api.schedule(capacity=500)
    paying = [order_id for _, order_id in await orders_in_payment(api, sid, PAYING)]
    load = Load(api, sid)
    workers = [asyncio.ensure_future(load.parent((await api.login())[0])) for _ in range(3)]
    workers.append(asyncio.ensure_future(load.newcomers()))
    try:
        await eventually(lambda: len(load.answers) >= 12, what="the load to run")
        down_at = time.monotonic()
        server.stop()
        for order_id in paying:  # the payers pay while the database is down
            await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
        status, ready, _ = await api.call("GET", "/readyz")
        assert status == 503 and ready["mysql"] == "down"
        await eventually(lambda: _each_refused_once(api, paying), what="every notification refused while down")
        await asyncio.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))  # the outage lasts 10 s
        during = len(load.answers)
        up_at = time.monotonic()
        server.start()
        await eventually(lambda: _ready(api), timeout=15, what="/readyz to be 200 again")
        await eventually(lambda: all_delivered(api, paying), timeout=45, what="every redelivered notification applied")
        await eventually(lambda: _created_since(load, during), timeout=15, what="bookings to succeed again")
    finally:
        load.running = False
        await asyncio.gather(*workers)

    await assert_paid_exactly_once(paying)
    assert {r.outcome for r in await inbox(paying)} == {"applied"}
    attempts = [a for n in await notifications(api, paying) for a in n["attempts"]]
    assert {a.get("status") for a in attempts} == {503, 204}  # refused while down (WeChat Pay redelivers), never a 500
    assert all(json.loads(a["body"])["code"] == "FAIL" for a in attempts if a["status"] == 503)
    refused = [(what, status, body) for what, status, body, *_ in load.answers if status not in (200, 201)]
    assert {"login", "create", "read", "schedules"} <= {what for what, *_ in refused}, "the load missed the outage"
    assert all(status == 503 and body["error"]["code"] in UNAVAILABLE and body["error"]["message"]
               for _, status, body in refused), refused
    slowest = max(seconds for *_, started, seconds in load.answers if down_at <= started <= up_at)
    assert slowest < 5, f"a request hung for {slowest:.1f}s while MariaDB was down"
    await assert_invariants(60)


async def _each_refused_once(api, order_ids):
    notes = await notifications(api, order_ids)
    return len(notes) == len(order_ids) and all(any(a.get("status") == 503 for a in n["attempts"]) for n in notes)


async def _ready(api):
    status, _, _ = await api.call("GET", "/readyz")
    return status == 200


def _created_since(load, index):
    """A booking made after the first `index` answers."""
    return any(what == "create" and status == 201 for what, status, *_ in load.answers[index:])


@pytest.mark.gen_test(timeout=90)
async def test_an_order_being_paid_when_mariadb_stops_can_be_paid_right_after_it_returns(
        private_mariadb, server_env, sandbox, services, tmp_path):
    """The prepay holds the order's lease while it waits for WeChat Pay; MariaDB stops; the prepay answers 503 and
    cannot give the lease back then. It keeps trying in the background (`Lease.end`), so once MariaDB is back the
    parent's retry is served at once — not after the lease would have run out (15 s), as before the fix.
    """
    server, url = private_mariadb
    env = service_env(sandbox, url, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="60")
    service = services(env, "outage-lease")
    api = Api(service.url, sandbox)
    sid = await api.schedule(capacity=5)
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "latency_ms": 1500})
    paying = asyncio.ensure_future(api.prepay(token, order["order_id"]))
    await eventually(lambda: _payment_started(order["order_id"]), what="the prepay to wait for WeChat Pay")
    server.stop()
    status, body = await paying
    assert status == 503 and body["error"]["code"] in UNAVAILABLE
    server.start()
    await eventually(lambda: _ready(api), timeout=15, what="/readyz to be 200 again")
    started = time.monotonic()
    status, body = await api.prepay(token, order["order_id"])
    took = time.monotonic() - started
    assert status == 200 and took < 5, f"the retry answered {status} {body} after {took:.1f}s"
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    await eventually(lambda: _paid(order["order_id"]), what="the payment to be applied")
    await assert_invariants(60)


async def _payment_started(order_id):
    return (await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()).trade_type is not None


async def _paid(order_id):
    return (await PaymentOrder.select().where(PaymentOrder.order_id == order_id).aio_get()).status == "paid"
