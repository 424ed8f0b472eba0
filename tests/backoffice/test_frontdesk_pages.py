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
