"""kill -9 of the process running the reconciler: another process takes the job over within two intervals.

Found failing by this test (the job lease lasted max(3 intervals, 30 s), so a dead holder stalled reconciliation
that long) and fixed on main (7232a73); kept as the regression test.
"""
import pytest

from models import JobLease, PaymentOrder, SeatReservation, utcnow
from tests.api import Api, eventually
from tests.faults.conftest import service_env
from tests.faults.flows import assert_invariants, statuses

INTERVAL = 1.0


async def _job_has_run():
    lease = await JobLease.select().where(JobLease.name == "reconcile").aio_first()
    return lease is not None and lease.runs >= 1


@pytest.mark.gen_test(timeout=90)
async def test_after_the_reconciler_process_dies_another_takes_over_within_two_intervals(
        fault_db, server_env, sandbox, services, tmp_path):
    env = service_env(sandbox, fault_db, server_env["REDIS_URL"], tmp_path / "certs",
                      RECONCILE_INTERVAL_SECONDS=str(INTERVAL), SEAT_HOLD_SECONDS="2", ORDER_EXPIRE_SECONDS="4")
    holder = services(env, "takeover-1")
    await eventually(_job_has_run, what="the first process to hold the reconcile job")
    survivor = services(env, "takeover-2")
    holder.kill()
    api = Api(survivor.url, sandbox)
    sid = await api.schedule(capacity=1)
    token, _ = await api.login()
    _, order = await api.order(token, sid)
    seat = await SeatReservation.select().join(PaymentOrder).where(
        PaymentOrder.order_id == order["order_id"]).aio_get()
    # The hold lapses at seat.expires_at; the invariant gives the reconciler two intervals after that.
    deadline = (seat.expires_at - seat.created_at).total_seconds() + 2 * INTERVAL
    await eventually(lambda: _expired(order["order_id"]), timeout=deadline + 0.5 - _age(seat),
                     what="the surviving process to expire the lapsed order")
    await assert_invariants(INTERVAL)


def _age(seat):
    return (utcnow() - seat.created_at).total_seconds()


async def _expired(order_id):
    return (await statuses([order_id]))[order_id] == "expired"
