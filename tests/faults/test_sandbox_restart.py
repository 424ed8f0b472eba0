"""WeChat Pay (the sandbox) killed and restarted on its port and state: its orders and pending notifications survive,
and the service carries on with them."""
import os
import subprocess
import sys

import pytest

from tests.api import Api, eventually
from tests.faults.conftest import service_env
from tests.faults.flows import (
    all_delivered, assert_invariants, assert_paid_exactly_once, notifications, order_in_payment, statuses,
)
from tests.harness import ROOT, VAR, SandboxProcess


@pytest.fixture
def own_sandbox():
    """A sandbox of this test's own (its state emptied at the first start), which the test kills and restarts."""
    state_dir = os.path.join(VAR, "test", f"faults-sandbox-{os.getpid()}")
    procs = [SandboxProcess(state_dir, time_scale=0.01, extra_args=("--clear-state",))]
    yield procs
    for proc in procs:
        if proc.proc.poll() is None:
            proc.stop()


@pytest.mark.gen_test(timeout=90)
async def test_a_restarted_wechat_pay_keeps_its_orders_and_notifications(own_sandbox, fault_db, server_env, services,
                                                                         tmp_path):
    first = own_sandbox[0]
    env = service_env(first, fault_db, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="60")
    service = services(env, "sandbox-restart")
    api = Api(service.url, first)
    sid = await api.schedule(capacity=5)
    tokens = [(await api.login())[0] for _ in range(4)]
    a, b, c = [await order_in_payment(api, t, sid) for t in tokens[:3]]
    await api.control("POST", "/sandbox/notifications/next", {"action": "delay", "delay_seconds": 5})
    await api.control("POST", f"/sandbox/orders/{a}/pay", {"notify": True})  # its notification is due in 5 s
    await api.control("POST", f"/sandbox/orders/{c}/pay", {"notify": False})  # never notified
    before = {o: await api.control("GET", f"/sandbox/orders/{o}") for o in (a, b, c)}
    [pending] = await notifications(api, [a])
    assert pending["status"] == "pending" and pending["attempts"] == []

    first.kill()
    own_sandbox.append(SandboxProcess(first.state_dir, time_scale=0.01, port=first.port))
    api.sandbox = own_sandbox[-1]
    for o in (a, b, c):
        assert await api.control("GET", f"/sandbox/orders/{o}") == before[o]

    # The kept notification goes out when due, from the restarted sandbox, and is applied once.
    await eventually(lambda: all_delivered(api, [a]), timeout=20, what="the kept notification to be delivered")
    [delivered] = await notifications(api, [a])
    assert delivered["id"] == pending["id"] and [t["status"] for t in delivered["attempts"]] == [204]
    # The unpaid order is still there to close: the cancel closes it and frees the seat.
    status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{b}/cancel", {}, token=tokens[1])
    assert status == 200 and view["status"] == "cancelled"
    assert (await api.control("GET", f"/sandbox/orders/{b}"))["trade_state"] == "CLOSED"
    # The paid one is still paid: a cancel finds out and applies the payment instead.
    status, view, _ = await api.call("POST", f"/api/v1/payment/orders/{c}/cancel", {}, token=tokens[2])
    assert status == 200 and view["status"] == "paid"
    await assert_paid_exactly_once([a, c])
    # And new payments start at the restarted WeChat Pay.
    d = await order_in_payment(api, tokens[3], sid)
    assert await statuses([d]) == {d: "pending"}
    await assert_invariants(60)
    run = subprocess.run([sys.executable, "manage.py", "check-invariants", "--wechatpay", "--days", "1"], cwd=ROOT,
                         env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0 and run.stdout.strip() == "all invariants hold", run.stdout + run.stderr
