"""The waitlist across service processes: seats freed in two processes at once are each offered exactly once, and a
kill -9 with an offer outstanding loses nothing (the kept seat is a row in MySQL, never a process's memory)."""
import asyncio

import pytest

from models import SubscribeMessage, WaitlistEntry
from tests.api import Api, eventually
from tests.faults.conftest import service_env
from tests.faults.flows import assert_invariants
from tests.waitlist.helpers import cancel, entry, full_session, in_line, join, offered

SEATS, WAITING = 6, 9


async def _line(sid):
    return list(await WaitlistEntry.select().where(WaitlistEntry.course_schedule == sid)
                .order_by(WaitlistEntry.id).aio_execute())


async def _messages(entries):
    return list(await SubscribeMessage.select().where(
        SubscribeMessage.waitlist_entry.in_([e.id for e in entries])).aio_execute())


@pytest.mark.gen_test(timeout=180)
async def test_two_processes_freeing_seats_at_once_offer_each_seat_once(fault_db, server_env, sandbox, services,
                                                                        tmp_path):
    env = service_env(sandbox, fault_db, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="3600")
    first, second = services(env, "waitlist-1"), services(env, "waitlist-2")
    one, two = Api(first.url, sandbox), Api(second.url, sandbox)
    sid, holders = await full_session(one, capacity=SEATS)
    await in_line(two, sid, WAITING)
    # Every holder cancels at the same instant, half of them through each process; a capacity raise of two seats
    # lands in the middle of it through the first.
    admin = await one.admin_token()

    async def raise_capacity():
        status, body, _ = await one.call("PATCH", f"/api/v1/admin/schedules/{sid}", {"capacity": SEATS + 2},
                                         token=admin)
        assert status == 200, body

    await asyncio.gather(*[cancel(one if i % 2 else two, token, order_id) for i, (token, order_id) in
                           enumerate(holders)], raise_capacity())
    line = await _line(sid)
    assert [e.status for e in line] == ["offered"] * (SEATS + 2) + ["waiting"] * (WAITING - SEATS - 2)
    messages = await _messages(line)
    assert sorted(m.waitlist_entry_id for m in messages) == [e.id for e in line[:SEATS + 2]]  # one each
    assert await one.remaining(sid) == 0 and await two.remaining(sid) == 0
    await assert_invariants(3600)


@pytest.mark.gen_test(timeout=180)
async def test_kill_9_with_an_offer_outstanding_the_kept_seat_survives_and_lapses_on_time(
        fault_db, server_env, sandbox, services, tmp_path):
    def env(offer_seconds):
        return service_env(sandbox, fault_db, server_env["REDIS_URL"], tmp_path / "certs",
                           RECONCILE_INTERVAL_SECONDS="0.5", WAITLIST_OFFER_SECONDS=str(offer_seconds))

    first = services(env(300), "waitlist-kill-1")
    api = Api(first.url, sandbox)
    sid, [(holder, held)] = await full_session(api, capacity=1)
    (a, _, ea), (b, _, eb) = await in_line(api, sid, 2)
    await cancel(api, holder, held)
    assert (await entry(api, a, ea["id"]))["status"] == "offered"
    first.kill()  # the offer outstanding, the process gone
    second = services(env(3), "waitlist-kill-2", port=first.port)
    stranger, _ = await api.login()
    status, body = await api.order(stranger, sid)
    assert status == 409 and body["error"]["code"] == "SOLD_OUT"  # still kept, by the row in MySQL
    status, order = await api.order(a, sid)  # and the offered parent's order takes it
    assert status == 201, order
    assert (await entry(api, a, ea["id"]))["status"] == "booked"
    assert (await entry(api, b, eb["id"]))["status"] == "waiting"
    # Another session: an offer outstanding (3 s) when the process dies; the next process lapses it on time and
    # passes the seat to the next in line, once.
    sid2, [(holder2, held2)] = await full_session(api, capacity=1)
    (c, _, ec), (d, _, ed) = await in_line(api, sid2, 2)
    await cancel(api, holder2, held2)
    assert (await entry(api, c, ec["id"]))["status"] == "offered"
    second.kill()
    services(env(300), "waitlist-kill-3", port=first.port)
    await offered(api, d, ed["id"], timeout=30)
    assert (await entry(api, c, ec["id"]))["status"] == "lapsed"
    line = await _line(sid) + await _line(sid2)
    assert sorted(m.waitlist_entry_id for m in await _messages(line)) == sorted([ea["id"], ec["id"], ed["id"]])
    await assert_invariants(0.5)


@pytest.mark.gen_test(timeout=180)
async def test_kill_9_in_a_burst_of_cancels_no_seat_is_lost_or_kept_twice(fault_db, server_env, sandbox, services,
                                                                         tmp_path):
    env = service_env(sandbox, fault_db, server_env["REDIS_URL"], tmp_path / "certs", RECONCILE_INTERVAL_SECONDS="0.5")
    first = services(env, "waitlist-burst-1")
    api = Api(first.url, sandbox)
    sid, holders = await full_session(api, capacity=SEATS)
    await in_line(api, sid, WAITING)
    cancels = asyncio.gather(*[cancel(api, t, o) for t, o in holders], return_exceptions=True)
    await eventually(lambda: _offers_at_least(sid, 1), what="the first offer")
    first.kill()
    done = await cancels
    services(env, "waitlist-burst-2", port=first.port)
    # The parents whose cancel died with the process cancel again, as the mini-program lets them.
    for (token, order_id), result in zip(holders, done):
        if isinstance(result, Exception):
            await cancel(api, token, order_id)
    line = await eventually(lambda: _all_offered(sid), timeout=30, what="every freed seat offered")
    assert [e.status for e in line] == ["offered"] * SEATS + ["waiting"] * (WAITING - SEATS)
    assert sorted(m.waitlist_entry_id for m in await _messages(line)) == [e.id for e in line[:SEATS]]
    await assert_invariants(0.5)


async def _offers_at_least(sid, n):
    return sum(e.status == "offered" for e in await _line(sid)) >= n


async def _all_offered(sid):
    line = await _line(sid)
    return line if sum(e.status == "offered" for e in line) == SEATS else None
