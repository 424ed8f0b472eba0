"""WORKERS=2: two processes on one port — pushes cross them, the jobs run once, /metrics counts both, a dead
worker is replaced, SIGTERM drains them all; and the JSON logs, request ids and metrics they write."""
import asyncio
import json
import os
import signal
import uuid

import pytest
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from models import PaymentAuditLog, PaymentOrder
from tests.api import Api, eventually
from tests.forge import Forger
from tests.harness import ServiceProcess, wait_until


@pytest.fixture
def two_workers(service_env, sandbox, db, tmp_path):
    env = {**service_env, "WORKERS": "2", "LOG_FORMAT": "json", "RECONCILE_INTERVAL_SECONDS": "0.3",
           "SEAT_HOLD_SECONDS": "1", "ORDER_EXPIRE_SECONDS": "3", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    env.pop("PORT")
    proc = ServiceProcess(env, name="workers")
    # /healthz answered by one worker says nothing of the other: wait until each has said it serves the port.
    wait_until(lambda: len(_serving(proc)) == 2, timeout=60, what="both workers serving")
    yield proc
    proc.stop()


def _serving(service) -> set:
    """Pids of the workers that logged that they serve the bound sockets (server.py serve())."""
    return {r["pid"] for r in _log_records(service) if str(r.get("message", "")).startswith("worker ")
            and " serving on the " in str(r.get("message", ""))}


def _log_records(service):
    records = []
    with open(service.log_path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line.startswith("{"):
                records.append(json.loads(line))
    return records


def _workers(service):
    """The worker pids of the supervisor."""
    with open(f"/proc/{service.proc.pid}/task/{service.proc.pid}/children") as fh:
        return [int(p) for p in fh.read().split()]


def _served_by(service, request_id):
    pids = {r["pid"] for r in _log_records(service) if r.get("request_id") == request_id and r["logger"] ==
            "tornado.access"}
    return pids.pop() if pids else None


async def _sockets_on_both_workers(service, token, order_id, tries=40):
    """Open sockets (each with its own request id) until both workers hold one; returns them by pid, and how many
    handshakes it took."""
    by_pid = {}
    for opened in range(1, tries + 1):
        rid = f"ws-{uuid.uuid4().hex[:12]}"
        request = HTTPRequest(service.url.replace("http://", "ws://") + "/ws/orders?token=" + token,
                              headers={"X-Request-ID": rid})
        conn = await websocket_connect(request)
        conn.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
        assert json.loads(await asyncio.wait_for(conn.read_message(), 10))["status"] == "pending"
        pid = await eventually(lambda: _served_by(service, rid), what="the handshake's log line")
        if pid in by_pid:  # one socket per worker: a user's sixth on one process closes their oldest (limits)
            conn.close()
            continue
        by_pid.setdefault(pid, []).append(conn)
        if len(by_pid) == 2:
            return by_pid, opened
    raise AssertionError(f"after {tries} sockets only workers {list(by_pid)} were used")


@pytest.mark.gen_test(timeout=120)
async def test_a_push_reaches_sockets_on_both_workers_and_metrics_count_both(two_workers, sandbox):
    api = Api(two_workers.url, sandbox)
    assert len(_workers(two_workers)) == 2
    sid, token, openid, order, _ = await api.order_in_payment()
    sockets, opened = await _sockets_on_both_workers(two_workers, token, order["order_id"])
    forger = Forger(sandbox.state_dir, sandbox.env)
    body = forger.body(forger.transaction(order["order_id"], openid=openid))
    status, _, headers = await api.call("POST", "/api/v1/payment/wxpay/callback", raw=body,
                                        headers={**forger.headers(body), "X-Request-ID": "notify-1"})
    assert status == 204 and headers["X-Request-ID"] == "notify-1"
    served = await eventually(lambda: _served_by(two_workers, "notify-1"))
    for pid, conns in sockets.items():
        for conn in conns:
            while True:
                frame = json.loads(await asyncio.wait_for(conn.read_message(), 10))
                if frame["status"] == "paid":
                    break
        assert pid in _workers(two_workers)
    assert set(sockets) - {served}, "a socket on the other worker got the push"
    # /metrics counts both processes: the payment, and every request either worker answered.
    status, text, _ = await api.call("GET", "/metrics")
    text = text.decode()
    assert status == 200
    assert 'gym_payments_total{source="notify"} 1.0' in text
    assert 'gym_notifications_total{kind="payment",outcome="applied"} 1.0' in text
    ws_handshakes = sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                        if line.startswith("gym_http_requests_total{") and 'route="/ws/orders"' in line)
    assert ws_handshakes == opened
    assert 'gym_dependency_up{dependency="mysql"} 1.0' in text
    for conns in sockets.values():
        for conn in conns:
            conn.close()


@pytest.mark.gen_test(timeout=120)
async def test_the_jobs_run_once_across_workers(two_workers, sandbox):
    api = Api(two_workers.url, sandbox)
    sid = await api.schedule(capacity=10)
    order_ids = []
    for _ in range(5):
        token, _ = await api.login()
        _, order = await api.order(token, sid)
        assert (await api.prepay(token, order["order_id"]))[0] == 200
        order_ids.append(order["order_id"])
    pks = [o.id for o in await PaymentOrder.select().where(PaymentOrder.order_id.in_(order_ids)).aio_execute()]

    async def all_expired():
        return await PaymentOrder.select().where(PaymentOrder.id.in_(pks) & (PaymentOrder.status == "expired")
                                                 ).aio_count() == len(pks)

    await eventually(all_expired, timeout=30, what="every order to expire")
    for pk in pks:
        assert await PaymentAuditLog.select().where((PaymentAuditLog.order == pk) & (
            PaymentAuditLog.action_type == "order_expired")).aio_count() == 1
    closes = [r for r in (await api.control("GET", "/sandbox/requests"))["items"]
              if r["path"].endswith("/close") and any(o in r["path"] for o in order_ids)]
    assert len(closes) == len(order_ids)
    # The reconciler's calls carry its round's id, and so do the audit rows it wrote.
    assert all((r.get("client_request_id") or "").startswith("reconcile-") for r in closes)
    rows = list(await PaymentAuditLog.select().where(PaymentAuditLog.order.in_(pks) & (
        PaymentAuditLog.action_type == "order_expired")).aio_execute())
    assert all(r.request_id and r.request_id.startswith("reconcile-") for r in rows)


@pytest.mark.gen_test(timeout=120)
async def test_a_killed_worker_is_replaced_and_sigterm_drains_both(two_workers, sandbox):
    api = Api(two_workers.url, sandbox)
    first = _workers(two_workers)
    os.kill(first[0], signal.SIGKILL)
    replaced = wait_until(lambda: (lambda now: now if len(now) == 2 and first[0] not in now else None)(
        _workers(two_workers)), timeout=20, what="the supervisor to start another worker")
    assert first[1] in replaced
    for _ in range(6):
        assert (await api.call("GET", "/healthz"))[0] == 200
    # A prepay in flight (the sandbox holds the JSAPI answer) is answered although SIGTERM arrives meanwhile.
    sid = await api.schedule()
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    await api.control("POST", "/sandbox/faults", {"path_prefix": "/v3/pay/transactions/jsapi", "latency_ms": 1500})
    prepay = asyncio.ensure_future(api.prepay(token, order["order_id"]))

    async def started():
        row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
        return row.trade_type is not None

    await eventually(started, what="the prepay to reach WeChat Pay")
    two_workers.proc.send_signal(signal.SIGTERM)
    status, params = await prepay
    assert status == 200 and params["package"].startswith("prepay_id=")
    assert two_workers.proc.wait(20) == 0
    for pid in replaced:
        assert not os.path.exists(f"/proc/{pid}") or open(f"/proc/{pid}/stat").read().split()[2] == "Z"


@pytest.mark.gen_test(timeout=60)
async def test_json_logs_and_request_ids(two_workers, sandbox):
    api = Api(two_workers.url, sandbox)
    status, _, headers = await api.call("GET", "/healthz", headers={"X-Request-ID": "ok.id-1_A"})
    assert headers["X-Request-ID"] == "ok.id-1_A"
    for bad in ("has space", "x" * 65, "semi;colon"):
        _, _, headers = await api.call("GET", "/api/v1/nope", headers={"X-Request-ID": bad})
        assert headers["X-Request-ID"] != bad and len(headers["X-Request-ID"]) == 32
    sid, token, _, order, _ = await api.order_in_payment()
    status, _, headers = await api.call("POST", f"/api/v1/payment/orders/{order['order_id']}/cancel", {},
                                        token=token, headers={"X-Request-ID": "cancel-77"})
    assert status == 200 and headers["X-Request-ID"] == "cancel-77"
    closes = [r for r in (await api.control("GET", "/sandbox/requests"))["items"]
              if r["path"].endswith(f"{order['order_id']}/close")]
    assert closes and closes[0]["client_request_id"] == "cancel-77"
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    cancelled = await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id) & (
        PaymentAuditLog.action_type == "order_cancelled")).aio_get()
    assert cancelled.request_id == "cancel-77"
    records = _log_records(two_workers)
    assert records and all({"time", "level", "logger", "message", "request_id"} <= set(r) for r in records)
    mine = [r for r in records if r["request_id"] == "cancel-77"]
    assert mine and any(r.get("order_id") == order["order_id"] for r in mine)
    with open(two_workers.log_path, encoding="utf-8") as fh:
        assert "token=" not in fh.read()
