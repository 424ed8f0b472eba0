"""The front desk's pages (/admin/) through HTTP with a cookie jar: a full session points to others with a seat."""
import pytest

from tests.backoffice.test_backoffice_pages import logged_in


@pytest.fixture
def overrides():
    """The back office is served in every mode: these tests run with dev mode off."""
    return {"DEV_MODE": "0"}


@pytest.mark.gen_test(timeout=60)
async def test_a_full_session_shows_the_nearest_sessions_with_a_seat(api, base_url):
    full = await api.schedule(capacity=1, title="满员的周六课", starts_in_days=4000)
    near = await api.schedule(capacity=3, title="有名额的周日课", starts_in_days=4001)
    holder, _ = await api.login()
    assert (await api.order(holder, full))[0] == 201
    browser, _ = await logged_in(base_url, "staff")
    page = await browser.get(f"/admin/schedules/{full}")
    assert page.status == 200 and 'id="alternatives"' in page.text and "这些课程还有名额" in page.text
    assert f'data-schedule-id="{near}"' in page.text and "有名额的周日课" in page.text and "剩余名额 3" in page.text
    other = await browser.get(f"/admin/schedules/{near}")
    assert 'id="alternatives"' not in other.text  # a session with seats points nowhere else


@pytest.mark.gen_test(timeout=120)
async def test_the_reschedule_dialog_moves_a_booking_and_offers_the_alternatives_of_a_full_session(api, base_url):
    sid, _, _, order = await api.paid_order(capacity=2, title="原来的周六课")
    full = await api.schedule(capacity=1, title="满员的周日课", starts_in_days=5000)
    near = await api.schedule(capacity=2, title="周日下午还有名额", starts_in_days=5000.2)
    holder, _ = await api.login()
    assert (await api.order(holder, full))[0] == 201
    browser, _ = await logged_in(base_url, "staff")
    story = await browser.get(f"/admin/orders/{order['order_id']}")
    assert 'id="reschedule-button"' in story.text
    dialog = await browser.get(f"/admin/orders/{order['order_id']}/reschedule")
    assert dialog.status == 200 and 'id="reschedule-target"' in dialog.text and "周日下午还有名额" in dialog.text
    assert f'value="{sid}"' not in dialog.text  # not its own session
    # The full session (as the parent asked for it): SOLD_OUT, its alternatives with 立即预约.
    refused = await browser.post(f"/admin/orders/{order['order_id']}/reschedule",
                                 {"_xsrf": dialog.xsrf(), "course_schedule_id": str(full)})
    assert refused.status == 409 and "名额已满" in refused.text and 'id="reschedule-alternatives"' in refused.text
    assert f'data-schedule-id="{near}"' in refused.text and "立即预约" in refused.text
    moved = await browser.post(f"/admin/orders/{order['order_id']}/reschedule",
                               {"_xsrf": dialog.xsrf(), "course_schedule_id": str(near)})
    assert moved.status == 200 and 'id="reschedule-result"' in moved.text and "周日下午还有名额" in moved.text
    status, body, _ = await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}",
                                     token=await api.admin_token())
    assert body["course_schedule_id"] == near
    # finance may not reschedule: no button, and the dialog is refused.
    money, _ = await logged_in(base_url, "finance")
    assert 'id="reschedule-button"' not in (await money.get(f"/admin/orders/{order['order_id']}")).text
    assert (await money.get(f"/admin/orders/{order['order_id']}/reschedule")).status == 403


@pytest.mark.gen_test(timeout=120)
async def test_attendance_on_the_roster_the_waitlist_and_the_no_show_rate(api, base_url):
    from tests.api import eventually

    sid = await api.schedule(capacity=1, title="到课登记页", starts_in_days=1)
    parent, _ = await api.login()
    _, order = await api.order(parent, sid)
    assert (await api.prepay(parent, order["order_id"]))[0] == 200
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    waiter, _ = await api.login()
    await eventually(lambda: _paid(api, parent, order["order_id"]), what="the payment")
    status, entry, _ = await api.call("POST", "/api/v1/waitlist", {"course_schedule_id": sid}, token=waiter)
    assert status == 201
    browser, _ = await logged_in(base_url, "staff")
    page = await browser.get(f"/admin/schedules/{sid}")
    assert f'data-entry-id="{entry["id"]}"' in page.text and "候补中" in page.text  # the session's waitlist
    assert "mark-attended" not in page.text  # not started: nothing to mark
    await api.start_now(sid)
    page = await browser.get(f"/admin/schedules/{sid}")
    assert "mark-attended" in page.text and "mark-no_show" in page.text
    rid = [line for line in page.text.split('name="reservation_id" value="')[1:]][0].split('"')[0]
    marked = await browser.post(f"/admin/schedules/{sid}/attendance",
                                {"_xsrf": page.xsrf(), "reservation_id": rid, "attendance": "no_show"})
    assert marked.status == 303
    shown = await browser.get(marked.location)
    assert "已登记到课" in shown.text and 'data-attendance="no_show"' in shown.text and "爽约" in shown.text
    home = await browser.get("/admin/")
    assert 'id="fig-no-show"' in home.text and "近30天爽约率" in home.text


async def _paid(api, token, order_id):
    return (await api.get_order(token, order_id))["status"] == "paid"
