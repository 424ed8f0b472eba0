"""The invariant checker itself: a normal booking passes; each invariant broken by hand is found, with its order."""
import datetime as dt
import os
import subprocess
import sys

import pytest

from models import CourseSchedule, PaymentAuditLog, PaymentOrder, PaymentTransaction, Refund, SeatReservation
from services.invariants import check_invariants, check_wechatpay
from tests.api import eventually
from tests.faults.flows import order_in_payment, statuses
from tests.harness import ROOT


@pytest.fixture
def overrides(fault_db_url):
    return {"DATABASE_URL": fault_db_url, "RECONCILE_INTERVAL_SECONDS": "60"}


async def _booked(api):
    """A session of 3 seats: A paid, B paying, C cancelled. Returns (schedule id, {name: PaymentOrder})."""
    sid = await api.schedule(capacity=3)
    ta, tb, tc = [(await api.login())[0] for _ in range(3)]
    a = await order_in_payment(api, ta, sid)
    b = await order_in_payment(api, tb, sid)
    _, c = await api.order(tc, sid)
    status, _, _ = await api.call("POST", f"/api/v1/payment/orders/{c['order_id']}/cancel", {}, token=tc)
    assert status == 200
    await api.control("POST", f"/sandbox/orders/{a}/pay", {"notify": True})
    await eventually(lambda: _status_is(a, "paid"), what="A's payment to be applied")
    names = {"a": a, "b": b, "c": c["order_id"]}
    return sid, {n: await PaymentOrder.select().where(PaymentOrder.order_id == o).aio_get() for n, o in names.items()}


async def _status_is(order_id, status):
    return (await statuses([order_id]))[order_id] == status


def _broken(found):
    return {(v.check, v.order_id) for v in found if not v.warning}


async def _set_seat(order, status):
    await SeatReservation.update(status=status).where(SeatReservation.order == order.id).aio_execute()


@pytest.mark.gen_test(timeout=60)
async def test_a_normal_booking_passes_and_the_command_says_so(api, service_env):
    await _booked(api)
    assert await check_invariants(60) == []
    run = subprocess.run([sys.executable, "manage.py", "check-invariants", "--wechatpay", "--days", "1"], cwd=ROOT,
                         env={**os.environ, **service_env}, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
    assert run.stdout.strip() == "all invariants hold"
    assert "wechatpay: 3/3 orders checked" in run.stderr


@pytest.mark.gen_test(timeout=60)
async def test_a_confirmed_seat_over_capacity_is_a_violation_and_holds_over_a_cut_a_warning(api, service_env):
    sid, o = await _booked(api)
    await CourseSchedule.update(capacity=1).where(CourseSchedule.id == sid).aio_execute()
    found = await check_invariants(60)
    assert _broken(found) == set()  # A confirmed fits; B's live hold is over the cut: allowed, but worth a look
    assert [v.line() for v in found] == [f"WARNING capacity order=- schedule={sid} held=2 capacity=1 "
                                         "(live holds above a cut capacity)"]
    await CourseSchedule.update(capacity=0).where(CourseSchedule.id == sid).aio_execute()
    found = await check_invariants(60)
    assert _broken(found) == {("capacity", o["a"].order_id)}
    run = subprocess.run([sys.executable, "manage.py", "check-invariants", "--database-url",
                          service_env["DATABASE_URL"]], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert run.returncode == 1
    assert f"VIOLATION capacity order={o['a'].order_id} schedule={sid} confirmed=1 capacity=0" in run.stdout


@pytest.mark.gen_test(timeout=60)
async def test_transactions_exactly_one_of_the_right_amount_for_paid_orders_and_none_for_others(api):
    _, o = await _booked(api)
    await PaymentTransaction.update(total_fee=1).where(PaymentTransaction.order == o["a"].id).aio_execute()
    assert _broken(await check_invariants(60)) == {("transactions", o["a"].order_id)}
    await PaymentAuditLog.update(transaction=None).where(PaymentAuditLog.order == o["a"].id).aio_execute()
    await PaymentTransaction.delete().where(PaymentTransaction.order == o["a"].id).aio_execute()
    assert _broken(await check_invariants(60)) == {("transactions", o["a"].order_id)}
    await PaymentTransaction.insert(transaction_id="4200000000000000000000000001", order=o["b"].id,
                                    out_trade_no=o["b"].order_id, trade_type="JSAPI", trade_state="SUCCESS",
                                    total_fee=20000, source="notify").aio_execute()
    assert _broken(await check_invariants(60)) == {("transactions", o["a"].order_id),
                                                   ("transactions", o["b"].order_id)}


@pytest.mark.gen_test(timeout=60)
async def test_no_seat_held_by_an_ended_order_and_a_paid_one_has_its_seat(api):
    _, o = await _booked(api)
    await _set_seat(o["c"], "temporary")  # by hand, so no audit row either
    assert _broken(await check_invariants(60)) == {("seats", o["c"].order_id), ("audit", o["c"].order_id)}
    await _set_seat(o["c"], "cancelled")
    await _set_seat(o["a"], "cancelled")
    assert _broken(await check_invariants(60)) == {("seats", o["a"].order_id), ("audit", o["a"].order_id),
                                                   ("seat_counter", None)}  # and the session's counter disagrees


@pytest.mark.gen_test(timeout=60)
async def test_an_order_pending_past_its_end_plus_two_intervals(api):
    sid, o = await _booked(api)
    end = o["b"].expires_at
    assert await check_invariants(60, now=end + dt.timedelta(seconds=119)) == []
    assert _broken(await check_invariants(60, now=end + dt.timedelta(seconds=121))) == {
        ("stale_pending", o["b"].order_id)}
    # A hold that lapsed before payment started ends the order just as well.
    token, _ = await api.login()
    _, d = await api.order(token, sid)
    seat = await SeatReservation.select().join(PaymentOrder).where(PaymentOrder.order_id == d["order_id"]).aio_get()
    assert _broken(await check_invariants(10, now=seat.expires_at + dt.timedelta(seconds=21))) == {
        ("stale_pending", d["order_id"])}


@pytest.mark.gen_test(timeout=60)
async def test_a_status_changed_without_its_audit_row(api):
    _, o = await _booked(api)
    await PaymentOrder.update(status="expired", trial_slot=None).where(PaymentOrder.id == o["b"].id).aio_execute()
    await _set_seat(o["b"], "expired")
    found = await check_invariants(60)
    assert _broken(found) == {("audit", o["b"].order_id)}
    assert {v.detail for v in found} == {"status=expired last audited=pending",
                                         "reservation=expired last audited=temporary"}


@pytest.mark.gen_test(timeout=60)
async def test_wechat_pays_view_paid_there_is_paid_here_once_and_nothing_else(api, ctx):
    sid, o = await _booked(api)
    assert await check_wechatpay(ctx.gateway, 1) == []
    await api.control("POST", f"/sandbox/orders/{o['b'].order_id}/pay", {"notify": False})
    assert await check_wechatpay(ctx.gateway, 1) == []  # paid seconds ago: the reconciler is still due to find it
    found = await check_wechatpay(ctx.gateway, 1, reconcile_interval=0.001)
    assert _broken(found) == {("wechatpay", o["b"].order_id)}
    assert "WeChat Pay says SUCCESS" in found[0].detail and "status=pending with 0 transaction(s)" in found[0].detail
    token, _ = await api.login()
    d = await order_in_payment(api, token, sid)
    await PaymentOrder.update(status="paid").where(PaymentOrder.order_id == d).aio_execute()
    await api.control("POST", "/sandbox/faults", {"path_prefix": f"/v3/pay/transactions/out-trade-no/{o['c'].order_id}",
                                                  "status": 500, "count": -1})
    progress = []
    found = await check_wechatpay(ctx.gateway, 1, reconcile_interval=0.001, batch=2, progress=progress.append)
    details = {v.order_id: v.detail for v in found if v.check == "wechatpay" and not v.warning}
    assert set(details) == {o["b"].order_id, d, o["c"].order_id}
    assert "but status=pending with 0 transaction(s)" in details[o["b"].order_id]
    assert details[d] == "status=paid but WeChat Pay says NOTPAY"
    assert details[o["c"].order_id].startswith("WeChat Pay could not be asked: SYSTEM_ERROR")
    assert progress[-1] == "wechatpay: 4/4 orders checked, 3 violation(s)" and len(progress) == 2


@pytest.mark.gen_test(timeout=60)
async def test_refunds_sum_to_refunded_fen_stay_within_the_payment_and_all_of_it_ends_the_order(api):
    _, o = await _booked(api)
    a = o["a"]
    status, refund = await api.refund(await api.admin_token("finance"), a.order_id, 5000)
    assert status == 201, refund
    await eventually(lambda: _refunded_fen_is(a, 5000), what="the partial refund to succeed")
    assert await check_invariants(60) == []
    await PaymentOrder.update(refunded_fen=0).where(PaymentOrder.id == a.id).aio_execute()
    found = await check_invariants(60)
    assert _broken(found) == {("refunds", a.order_id)}
    assert [v.detail for v in found] == ["refunded_fen=0 but SUCCESS refunds sum to 5000"]
    await PaymentOrder.update(refunded_fen=5000).where(PaymentOrder.id == a.id).aio_execute()
    await Refund.insert(out_refund_no="by-hand", order=a.id, amount_fen=20000, status="SUCCESS").aio_execute()
    found = await check_invariants(60)
    assert _broken(found) == {("refunds", a.order_id), ("audit", a.order_id)}
    assert {v.detail for v in found} == {
        "refunded_fen=5000 but SUCCESS refunds sum to 25000", "refunds of 25000 fen over the 20000 paid",
        "status=paid with 25000 of 20000 fen refunded", "refund by-hand=SUCCESS last audited=None"}


async def _refunded_fen_is(order, fen):
    return (await PaymentOrder.select().where(PaymentOrder.id == order.id).aio_get()).refunded_fen == fen


@pytest.mark.gen_test(timeout=60)
async def test_a_seat_counter_out_of_step_with_the_confirmed_seats(api):
    """The session's confirmed-seat counter (what a payment claims its seat with) must match the reservations."""
    from models import CourseSchedule
    from services.invariants import check_invariants

    _, _, _, order = await api.paid_order()
    schedule = await CourseSchedule.select().where(CourseSchedule.id == order["course_schedule_id"]).aio_get()
    assert schedule.confirmed_seats == 1
    assert not [v for v in await check_invariants(60) if v.check == "seat_counter"]
    await CourseSchedule.update(confirmed_seats=0).where(CourseSchedule.id == schedule.id).aio_execute()
    found = [v for v in await check_invariants(60) if v.check == "seat_counter"]
    assert len(found) == 1 and f"schedule={schedule.id}" in found[0].detail
