"""SOLD_OUT names other sessions: up to three upcoming ones with a seat left, nearest in start time first."""
import itertools

import pytest

_far = itertools.count(0)


def _days():
    """A stretch of the calendar no other test books in (each test of this module gets its own, years away), so that
    the nearest sessions are this test's own."""
    return 2000 + 60 * next(_far)


async def _full(api, days, title="满员课"):
    """A session whose one seat is held by another parent."""
    sid = await api.schedule(capacity=1, title=title, starts_in_days=days)
    holder, _ = await api.login()
    assert (await api.order(holder, sid))[0] == 201
    return sid


@pytest.mark.gen_test(timeout=60)
async def test_sold_out_lists_the_three_nearest_sessions_with_a_seat(api):
    base = _days()
    asked = await _full(api, base)
    later_1 = await api.schedule(capacity=4, title="晚一天", starts_in_days=base + 1)
    earlier_2 = await api.schedule(capacity=2, title="早两天", starts_in_days=base - 2)
    full_near = await _full(api, base + 0.5)  # nearer than all, but no seat left
    later_3 = await api.schedule(capacity=3, title="晚三天", starts_in_days=base + 3)
    await api.schedule(capacity=3, title="晚五天", starts_in_days=base + 5)  # a fourth: one too many
    parent, _ = await api.login()
    assert (await api.order(parent, later_3))[0] == 201  # a seat of later_3 is held: remaining 2
    other, _ = await api.login()
    status, body = await api.order(other, asked)
    assert status == 409 and body["error"]["code"] == "SOLD_OUT" and body["error"]["message"] == "名额已满"
    found = body["error"]["alternatives"]
    assert [a["id"] for a in found] == [later_1, earlier_2, later_3]
    assert full_near not in [a["id"] for a in found]
    assert [a["remaining"] for a in found] == [4, 2, 2]
    assert [a["title"] for a in found] == ["晚一天", "早两天", "晚三天"]
    assert all(set(a) == {"id", "title", "starts_at", "remaining"} for a in found)
    assert found[0]["starts_at"].endswith("+08:00")
    # Booking the first alternative works as any booking does.
    status, order = await api.order(other, found[0]["id"])
    assert status == 201 and order["course_schedule_id"] == later_1


@pytest.mark.gen_test(timeout=60)
async def test_full_and_started_sessions_are_never_offered(api):
    started = await api.schedule(capacity=5, title="已开始", starts_in_days=-0.01)
    base = _days()
    asked = await _full(api, base)
    await _full(api, base + 1)
    parent, _ = await api.login()
    status, body = await api.order(parent, asked)
    assert status == 409 and body["error"]["code"] == "SOLD_OUT"
    # Other tests' sessions (days from now, years before these) may have seats: offered, never a full or started one.
    found = body["error"]["alternatives"]
    assert len(found) <= 3 and all(a["id"] != asked and a["remaining"] > 0 for a in found)
    assert started not in [a["id"] for a in found]


@pytest.mark.gen_test(timeout=60)
async def test_the_locked_path_refuses_with_alternatives_too(api):
    # A parent with a live order elsewhere goes past the unlocked pre-check to the schedule's lock: same answer.
    base = _days()
    asked = await _full(api, base)
    near = await api.schedule(capacity=2, title="有名额", starts_in_days=base + 0.1)
    parent, _ = await api.login()
    other = await api.schedule(capacity=2, starts_in_days=base + 40)
    assert (await api.order(parent, other))[0] == 201
    status, body = await api.order(parent, asked)
    # The open order elsewhere is told first, as ever (its own rule comes before the seats).
    assert status == 409 and body["error"]["code"] == "PENDING_ORDER_EXISTS"
    paid_sid, token, _, _ = await api.paid_order()
    status, body = await api.order(token, asked)
    assert status == 409 and body["error"]["code"] == "TRIAL_ALREADY_BOOKED"
    fresh, _ = await api.login()
    status, body, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": asked},
                                     token=fresh, headers={"Idempotency-Key": "alt-locked-path"})
    assert status == 409 and body["error"]["code"] == "SOLD_OUT"  # an Idempotency-Key skips the pre-check
    assert body["error"]["alternatives"][0]["id"] == near
