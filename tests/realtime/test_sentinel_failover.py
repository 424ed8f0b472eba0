"""Redis Sentinel: the service follows the Sentinels to a new master by itself, never restarted.

The master's machine dies (kill -9 of its Redis and its Sentinel) in a notification storm: every payment is applied
once, every subscriber told, and pushes cross processes live again through the new master. A planned failover
leaves the old master running for a while: a subscriber still there gets, once it moves, what the new master
carried meanwhile; the control shows redis-py's own retry losing exactly that without a sign.
"""
import asyncio
import json
import time

import pytest
import redis
from tornado.websocket import websocket_connect

import settings as settings_module
from realtime.hub import CHANNEL
from services.redis_client import open_redis
from tests.api import Api, eventually
from tests.faults.conftest import fault_db, fault_db_url, services  # noqa: F401 - fixtures
from tests.faults.conftest import service_env as fault_service_env
from tests.faults.flows import (
    all_delivered, assert_invariants, assert_paid_exactly_once, count_status, inbox, orders_in_payment,
)
from tests.realtime.sentinels import MASTER_NAME, SentinelCluster

STORM = 40
OTHER_CHANNEL = "gym:sentinel-test"


@pytest.fixture
def cluster(tmp_path):
    """A master, a replica and three Sentinels of this test's own."""
    started = SentinelCluster(str(tmp_path / "redis"))
    yield started
    started.stop()


@pytest.fixture
def overrides(cluster):
    """The in-process service finds its Redis through the cluster's Sentinels, and counts rate limits there."""
    return {"REDIS_URL": cluster.url(), "RATE_LIMIT_PER_MINUTE": "1000"}


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


def _subscribed(node, channel=CHANNEL):
    """How many connections listen to the push channel on this Redis."""
    with node.client() as c:
        return dict(c.pubsub_numsub(channel)).get(channel, 0)


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
        fault_db, server_env, sandbox, cluster, services, tmp_path):  # noqa: F811 - the fixtures imported above
    env = fault_service_env(sandbox, fault_db, cluster.url(), tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="60")
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


def _published(node):
    """PUBLISH commands this Redis has run."""
    with node.client() as c:
        return c.info("commandstats").get("cmdstat_publish", {}).get("calls", 0)


def _fail_over(cluster):
    """SENTINEL FAILOVER (an operator's planned switch): the master stays up, the replica is promoted."""
    with cluster.sentinels[1].client() as c:
        c.sentinel_failover(MASTER_NAME)


@pytest.mark.gen_test(timeout=120)
async def test_a_planned_failover_subscribers_get_what_the_new_master_carried_before_they_moved(
        cluster, api, base_url, service_env, sandbox, services):  # noqa: F811 - the fixtures imported above
    # A process delivers its own pushes to its own sockets at once: the order is paid through another process (the
    # back), so that the push reaches this one's subscriber (the front) only through Redis.
    api_back = _back(services, service_env, sandbox, "planned")
    _, token, _, order, _ = await api_back.order_in_payment()
    order_id = order["order_id"]
    conn = await _subscribe(base_url, token, order_id)
    await _until(conn, "pending")
    await eventually(lambda: _subscribed(cluster.master) == 2, what="both processes to listen on the master")
    _fail_over(cluster)
    await eventually(cluster.failed_over_to_replica, timeout=30, interval=0.1, what="the replica promoted")
    # Until the Sentinels demote it (at their next look, within about 10 s), the old master still acts as one: the
    # subscriptions stay there, while a connection opened now (here the publishers', their old ones cut) reaches the
    # new master. The payment's push goes there, where nobody listens yet.
    before = _published(cluster.replica)
    cluster.drop_client_connections(cluster.master)
    await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
    await eventually(lambda: _published(cluster.replica) > before, what="the push published on the new master")
    assert cluster.role(cluster.master) == "master" and _subscribed(cluster.replica) == 0, "demoted too early"
    await eventually(lambda: cluster.role(cluster.master) == "slave", timeout=40, interval=0.2,
                     what="the Sentinels to demote the old master")
    frame = await _until(conn, "paid")  # the Hub saw its subscription cut, moved, and re-sent the state
    assert frame["order_id"] == order_id and frame["reservation_status"] == "confirmed"
    await eventually(lambda: _subscribed(cluster.replica) == 2, what="both processes to listen on the new master")
    conn.close()


@pytest.mark.gen_test(timeout=120)
async def test_a_hung_master_holds_no_login_and_the_subscription_leaves_it(
        cluster, api, base_url, service_env, sandbox, services):  # noqa: F811 - the fixtures imported above
    """SIGSTOP of the master: it answers nothing, yet its kernel keeps every connection open and answers TCP
    keepalive, so only the service's own timeouts tell. A login's rate limit waits a moment and goes on without
    Redis; the Sentinels promote the replica; the subscription, PINGed and unanswered, moves to it by itself."""
    api_back = _back(services, service_env, sandbox, "hung")  # pays: the push reaches us through Redis
    _, token, _, order, _ = await api_back.order_in_payment()
    order_id = order["order_id"]
    conn = await _subscribe(base_url, token, order_id)
    await _until(conn, "pending")
    await eventually(lambda: _subscribed(cluster.master) == 2, what="both processes to listen on the master")
    cluster.master.hang()
    started = time.monotonic()
    await api.login()
    assert time.monotonic() - started < 2, "a login waited for the hung master"
    await eventually(cluster.failed_over_to_replica, timeout=30, interval=0.1, what="the replica promoted")
    await eventually(lambda: _subscribed(cluster.replica) == 2, timeout=30, what="the subscriptions to move")
    before = _published(cluster.replica)
    await api.control("POST", f"/sandbox/orders/{order_id}/pay", {"notify": True})
    assert (await _until(conn, "paid"))["order_id"] == order_id
    assert _published(cluster.replica) > before  # the push went through the new master
    conn.close()


def _back(services, service_env, sandbox, name):  # noqa: F811 - the fixture imported above
    """A second service process on the same database and Sentinels: the API of the orders it makes, and so the
    WeChat Pay notifications of their payments, are its."""
    back = services({k: v for k, v in service_env.items() if k != "PORT"}, f"sentinel-back-{name}")
    return Api(back.url, sandbox)


async def _first_message(pubsub):
    async for item in pubsub.listen():
        if item["type"] == "message":
            return item["data"]


@pytest.mark.gen_test(timeout=120)
async def test_control_a_subscription_redis_py_retries_misses_pushes_without_a_sign(cluster):
    """Why the Hub subscribes through a client redis-py never retries. Subscribed through the publisher's client (one
    retry), redis-py reconnects the subscription the demoted master cut and resubscribes on the new master by
    itself: what was published there in between is gone, and the listener never hears of the break. Through the
    subscriber client the break is raised, which is what makes the Hub re-send the state."""
    clients = open_redis(settings_module.parse_redis_url({"REDIS_URL": cluster.url()}))
    retried, ours = clients.publisher.pubsub(), clients.subscriber.pubsub()
    try:
        await retried.subscribe(CHANNEL)
        await ours.subscribe(OTHER_CHANNEL)  # its own channel: its reconnect before raising must not be counted below
        await eventually(lambda: _subscribed(cluster.master) == 1 and _subscribed(cluster.master, OTHER_CHANNEL) == 1,
                         what="both subscriptions on the master")
        retried_first, ours_first = (asyncio.ensure_future(_first_message(p)) for p in (retried, ours))
        _fail_over(cluster)
        await eventually(cluster.failed_over_to_replica, timeout=30, interval=0.1, what="the replica promoted")
        with cluster.replica.client() as c:
            c.publish(CHANNEL, "published on the new master while the subscriptions were on the old one")
        with pytest.raises(redis.ConnectionError):
            await asyncio.wait_for(ours_first, 40)  # the Sentinels demoted the old master and cut its clients
        await eventually(lambda: _subscribed(cluster.replica) == 1, what="the retried subscription to move by itself")
        assert not retried_first.done()
        with cluster.replica.client() as c:
            c.publish(CHANNEL, "after")
        assert await asyncio.wait_for(retried_first, 10) == b"after"  # the message in between was lost, silently
    finally:
        await retried.aclose()
        await ours.aclose()
        await clients.aclose()
