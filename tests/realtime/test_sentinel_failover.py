"""Redis Sentinel: the master's machine dies (kill -9 of its Redis and its Sentinel) in a notification storm; the
service, never restarted, follows the Sentinels to the promoted replica: every payment applied once, every
subscriber told, and pushes crossing processes live again through the new master."""
import asyncio
import json

import pytest
from tornado.websocket import websocket_connect

from realtime.hub import CHANNEL
from tests.api import Api, eventually
from tests.faults.conftest import fault_db, fault_db_url, service_env, services  # noqa: F401 - fixtures
from tests.faults.flows import (
    all_delivered, assert_invariants, assert_paid_exactly_once, count_status, inbox, orders_in_payment,
)
from tests.realtime.sentinels import SentinelCluster

STORM = 40


async def _subscribe(base_url, token, order_id):
    conn = await websocket_connect(base_url.replace("http://", "ws://") + "/ws/orders?token=" + token)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order_id}))
    return conn


async def _until(conn, status, timeout=20):
    """The next `order.status` frame with this status (earlier ones, snapshots or pushes, are read past)."""
    while True:
        message = await asyncio.wait_for(conn.read_message(), timeout)
        assert message is not None, f"socket closed: {conn.close_code}"
        frame = json.loads(message)
        if frame.get("type") == "order.status" and frame["status"] == status:
            return frame


def _subscribed(node):
    """How many connections listen to the push channel on this Redis."""
    with node.client() as c:
        return dict(c.pubsub_numsub(CHANNEL)).get(CHANNEL, 0)


async def _redis_ok(*apis):
    return all([(await a.call("GET", "/readyz"))[1].get("redis") == "ok" for a in apis])


async def _pay_all(api, order_ids):
    for order_id in order_ids:  # the payers pay, and WeChat Pay notifies, a few milliseconds apart
        await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
        await asyncio.sleep(0.02)


async def _at_least_paid(order_ids, n):
    return await count_status(order_ids, "paid") >= n


@pytest.mark.gen_test(timeout=180)
async def test_master_killed_in_a_notification_storm_payments_once_and_pushes_flow_after_the_failover(
        fault_db, server_env, sandbox, services, tmp_path):  # noqa: F811 - the fixtures imported above
    cluster = SentinelCluster(str(tmp_path / "redis"))
    try:
        env = service_env(sandbox, fault_db, cluster.url(), tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="60")
        front = services(env, "sentinel-front")  # holds the WebSockets
        back = services(env, "sentinel-back")  # takes the API calls and WeChat Pay's notifications
        pids = (front.proc.pid, back.proc.pid)
        api, api_front = Api(back.url, sandbox), Api(front.url, sandbox)
        sid = await api.schedule(capacity=STORM + 1)
        booked = await orders_in_payment(api, sid, STORM)
        orders = [order_id for _, order_id in booked]
        sockets = [await _subscribe(front.url, token, order_id) for token, order_id in booked]
        for conn in sockets:
            await _until(conn, "pending")
        await eventually(lambda: _subscribed(cluster.master) == 2, what="both processes to listen on the master")

        paying = asyncio.ensure_future(_pay_all(api, orders))
        await eventually(lambda: _at_least_paid(orders, STORM // 4), what="a quarter of the payments applied")
        cluster.master.kill()
        cluster.sentinels[0].kill()  # the master's machine had a Sentinel too; it is the first one REDIS_URL names
        assert await count_status(orders, "paid") < STORM, "the kill came after the storm"
        await paying
        await eventually(cluster.failed_over_to_replica, timeout=60, interval=0.1,
                         what="the two Sentinels left to promote the replica")

        await eventually(lambda: all_delivered(api, orders), timeout=45, what="every notification acknowledged")
        await assert_paid_exactly_once(orders)
        receipts = await inbox(orders)
        assert len(receipts) == STORM and {r.outcome for r in receipts} <= {"applied", "duplicate"}
        for conn, order_id in zip(sockets, orders):  # pushed live, re-published from the outbox, or re-sent
            assert (await _until(conn, "paid"))["order_id"] == order_id

        # Both processes subscribe on the new master (the old one is dead), and a payment on the back now reaches a
        # subscriber on the front live, through the new master: the back's publisher sends its queue in order, so
        # everything it queued while Redis was away went out before this push.
        await eventually(lambda: _subscribed(cluster.replica) == 2, timeout=20,
                         what="both processes to listen on the new master")
        await eventually(lambda: _redis_ok(api, api_front), what="both processes to see Redis again")
        [(token, order_id)] = await orders_in_payment(api, sid, 1)
        live = await _subscribe(front.url, token, order_id)
        await _until(live, "pending")
        await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
        assert (await _until(live, "paid"))["order_id"] == order_id
        assert (front.proc.pid, back.proc.pid) == pids and front.proc.poll() is None and back.proc.poll() is None
        for conn in [*sockets, live]:
            conn.close()
        await assert_invariants(60)
    finally:
        cluster.stop()
