"""The seat rule and the payable rule are each written once as a Python check and once as SQL: over every
combination of the columns they read, the two forms agree (a change to one without the other fails here)."""
import datetime as dt
import itertools
import uuid

import pytest

from models import PaymentOrder, SeatReservation, User, WaitlistEntry, database, personal_data, utcnow
from services.lifecycle.orders import PAYABLE_SQL, payable_problem
from services.lifecycle.seats import (
    hold_lapsed, hold_lapsed_sql, kept_seat, kept_seat_sql, offer_lapsed, offer_lapsed_sql, takes_seat, takes_seat_sql,
)
from services.lifecycle.statuses import ORDER_STATUSES, RESERVATION_STATUSES, WAITLIST_STATUSES


@pytest.fixture
def overrides():
    """No background job: the rows made here must stay as made (the waitlist's sweep would offer and lapse them)."""
    return {"RUN_JOBS": "0"}


async def _ids(sql, params):
    async def fetch(db, cursor):
        return {row[0] for row in await cursor.fetchall()}

    return await database.aio_execute_sql(sql, params, fetch_results=fetch)


async def _rows(api, now):
    """Orders with reservations in every combination of what the rules read; [(order, reservation)]."""
    sid = await api.schedule(capacity=1000)
    _, openid = await api.login()
    user = await User.select().where(User.openid_hash.in_(personal_data.lookup_hashes(openid))).aio_get()
    hour = dt.timedelta(hours=1)
    made = []
    for order_status, trade_type, order_end, status, started, hold_end in itertools.product(
            ORDER_STATUSES, (None, "JSAPI", "NATIVE"), (now - hour, now + hour), RESERVATION_STATUSES, (False, True),
            (now - hour, now + hour)):
        order = await PaymentOrder.aio_create(
            order_id=uuid.uuid4().hex, user=user.id, course_schedule=sid, amount=200, amount_fen=20000,
            status=order_status, description="rule", trade_type=trade_type, expires_at=order_end)
        reservation = await SeatReservation.aio_create(
            reservation_id=uuid.uuid4().hex, order=order.id, course_schedule=sid, user=user.id, status=status,
            payment_started=started, expires_at=hold_end)
        made.append((order, reservation))
    return made


@pytest.mark.gen_test(timeout=120)
async def test_the_python_and_sql_forms_of_each_rule_agree(api):
    now = utcnow()
    made = await _rows(api, now)
    pks = [r.id for _, r in made]
    inside = "r.`id` IN (" + ", ".join(["%s"] * len(pks)) + ")"
    lapsed = await _ids(f"SELECT r.`id` FROM `seat_reservations` r WHERE {inside} AND {hold_lapsed_sql('r')}",
                        (*pks, now))
    taking = await _ids(f"SELECT r.`id` FROM `seat_reservations` r WHERE {inside} AND {takes_seat_sql('r')}",
                        (*pks, now))
    assert lapsed == {r.id for _, r in made if hold_lapsed(r, now)}
    assert taking == {r.id for _, r in made if takes_seat(r, now)}
    assert lapsed and taking and len(taking) < len(made)  # both rules select some rows and leave others
    for trade_type in ("JSAPI", "NATIVE"):
        payable = await _ids(f"SELECT o.`id` FROM `payment_orders` o JOIN `seat_reservations` r ON r.`order_id` = "
                             f"o.`id` WHERE {inside} AND {PAYABLE_SQL}", (*pks, now, trade_type, now))
        assert payable == {o.id for o, r in made if payable_problem(o, r, trade_type, now) is None}, trade_type
        assert payable


@pytest.mark.gen_test(timeout=60)
async def test_the_kept_seat_rule_agrees_in_python_and_sql(api):
    now = utcnow()
    sid = await api.schedule(capacity=1000)
    hour = dt.timedelta(hours=1)
    made = []
    for status, expires in itertools.product(WAITLIST_STATUSES, (None, now - hour, now + hour)):
        if status == "offered" and expires is None:
            continue  # an offer always has its end
        _, openid = await api.login()
        user = await User.select().where(User.openid_hash.in_(personal_data.lookup_hashes(openid))).aio_get()
        made.append(await WaitlistEntry.aio_create(course_schedule=sid, user=user.id, status=status,
                                                   offer_expires_at=expires))
    inside = "w.`id` IN (" + ", ".join(["%s"] * len(made)) + ")"
    pks = [e.id for e in made]
    kept = await _ids(f"SELECT w.`id` FROM `waitlist_entries` w WHERE {inside} AND {kept_seat_sql('w')}", pks)
    lapsed = await _ids(f"SELECT w.`id` FROM `waitlist_entries` w WHERE {inside} AND {offer_lapsed_sql('w')}",
                        (*pks, now))
    stored = {e.id: e.status for e in await WaitlistEntry.select().where(WaitlistEntry.id.in_(pks)).aio_execute()}
    assert stored == {e.id: e.status for e in made}
    assert kept == {e.id for e in made if kept_seat(e)} and kept
    assert lapsed == {e.id for e in made if offer_lapsed(e, now)} and lapsed and lapsed < kept
    # Both count in the seats a schedule shows as taken (one seat per kept offer, lapsed by time or not).
    assert await api.remaining(sid) == 1000 - len(kept)
