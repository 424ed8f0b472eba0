"""The back office pages (/admin/) through HTTP with a cookie jar, as a browser without JavaScript uses them: login and
logout, the cookie's flags, XSRF, roles refused with 403, an inactive operator out at once, the refund dialog refunding
exactly once, escaping, filters, htmx fragments and paging — outside dev mode."""
import asyncio
import datetime as dt
import html
import http.cookies
import json
import re
import time
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from models import PaymentAuditLog, Refund
from services.accounts.operators import provision_operator
from tests.api import eventually

PASSWORD = "correct-horse-battery"
REFUNDS = "/v3/refund/domestic/refunds"


@pytest.fixture
def overrides():
    """The back office is served in every mode: these tests run with dev mode off."""
    return {"DEV_MODE": "0", "RECONCILE_INTERVAL_SECONDS": "0.3"}


class Page:
    """One answer: status, headers, the HTML as text."""

    def __init__(self, response):
        self.status = response.code
        self.headers = response.headers
        self.text = (response.body or b"").decode("utf-8", errors="replace")

    @property
    def location(self):
        """Where a redirect points."""
        return self.headers.get("Location")

    def xsrf(self):
        """The `_xsrf` value of the page's first form."""
        match = re.search(r'name="_xsrf" value="([^"]+)"', self.text)
        assert match, f"no _xsrf field on the page:\n{self.text[:2000]}"
        return match.group(1)

    def field(self, name):
        """The value of the first input named `name`."""
        match = re.search(rf'name="{name}"[^>]*value="([^"]*)"', self.text)
        assert match, f"no input {name} on the page"
        return match.group(1)


class Browser:
    """A cookie-keeping client (no JavaScript): it follows no redirect by itself, so each one can be checked."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.cookies = {}
        self.set_cookies = []
        self.http = AsyncHTTPClient()

    async def get(self, path, headers=None):
        """GET a page."""
        return await self.request("GET", path, None, headers)

    async def post(self, path, form, headers=None):
        """POST a form (urlencoded, as a browser sends one)."""
        return await self.request("POST", path, form, headers)

    async def request(self, method, path, form=None, headers=None):
        """One request with the cookies this browser holds."""
        hdrs = dict(headers or {})
        if self.cookies:
            hdrs["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        body = None
        if method == "POST":
            body = urlencode(form or {})
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        response = await self.http.fetch(HTTPRequest(self.base_url + path, method=method, body=body, headers=hdrs,
                                                     follow_redirects=False, request_timeout=30), raise_error=False)
        for header in response.headers.get_list("Set-Cookie"):
            self.set_cookies.append(header)
            jar = http.cookies.SimpleCookie()
            jar.load(header)
            for name, morsel in jar.items():
                if morsel.value in ("", '""'):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = morsel.value
        return Page(response)

    async def login(self, username, password=PASSWORD):
        """Log in through the form; returns the answer to the POST."""
        form = await self.get("/admin/login")
        assert form.status == 200
        return await self.post("/admin/login", {"_xsrf": form.xsrf(), "username": username, "password": password})

    def cookie_header(self, name):
        """The last Set-Cookie header for `name`."""
        return [h for h in self.set_cookies if h.startswith(f"{name}=")][-1]


async def operator(role):
    """A new operator of `role` (made with the service's own provision_operator); returns its username."""
    name = f"bo-{role}-{time.monotonic_ns()}"
    await provision_operator(name, PASSWORD, role)
    return name


async def logged_in(base_url, role):
    """A browser logged in as a new operator of `role`: (browser, username)."""
    browser, name = Browser(base_url), await operator(role)
    assert (await browser.login(name)).status == 303
    return browser, name


async def api_login(api, username):
    """The operator's API token (for the setup and checks that the pages do not make)."""
    status, data, _ = await api.call("POST", "/api/v1/admin/login", {"username": username, "password": PASSWORD})
    assert status == 200, data
    return data["token"]


@pytest.mark.gen_test(timeout=60)
async def test_login_gives_a_strict_http_only_cookie_and_logout_ends_the_session(api, base_url):
    browser, name = Browser(base_url), await operator("staff")
    first = await browser.get("/admin/orders?status=paid")
    assert first.status == 303 and first.location == "/admin/login?" + urlencode({"next": "/admin/orders?status=paid"})

    form = await browser.get("/admin/login", headers={"X-Request-ID": "desk-login-1"})
    assert form.status == 200 and "体验课后台登录" in form.text and form.headers["X-Request-ID"] == "desk-login-1"
    assert "default-src 'self'" in form.headers["Content-Security-Policy"]
    xsrf_cookie = browser.cookie_header("_xsrf")
    assert "HttpOnly" in xsrf_cookie and "SameSite=Strict" in xsrf_cookie and "Path=/admin" in xsrf_cookie

    wrong = await browser.post("/admin/login", {"_xsrf": form.xsrf(), "username": name, "password": "not-it-at-all"})
    assert wrong.status == 401 and "用户名或密码错误" in wrong.text and "gym_admin" not in browser.cookies

    ok = await browser.post("/admin/login", {"_xsrf": form.xsrf(), "username": name, "password": PASSWORD,
                                             "next": "/admin/orders?status=paid"})
    assert ok.status == 303 and ok.location == "/admin/orders?status=paid"
    cookie = browser.cookie_header("gym_admin")
    for flag in ("HttpOnly", "SameSite=Strict", "Path=/admin", "Max-Age=28800"):
        assert flag in cookie, cookie
    assert "Secure" not in cookie  # plain HTTP here; see the proxy test
    home = await browser.get("/admin/")
    assert home.status == 200 and name in home.text and "今日概况" in home.text

    copied = dict(browser.cookies)  # someone copied the cookie before the logout
    out = await browser.post("/admin/logout", {"_xsrf": home.xsrf()})
    assert out.status == 303 and out.location == "/admin/login" and "gym_admin" not in browser.cookies
    assert (await browser.get("/admin/")).status == 303
    thief = Browser(base_url)
    thief.cookies = copied
    assert (await thief.get("/admin/")).status == 303  # the logout ended the session itself, not only the cookie


@pytest.mark.gen_test(timeout=60)
async def test_login_never_sends_a_person_to_another_site(api, base_url):
    browser, name = Browser(base_url), await operator("staff")
    form = await browser.get("/admin/login")
    for target in ("https://evil.example/", "//evil.example/admin/", "/api/v1/admin/operators", "/admin/\\evil"):
        browser.cookies.pop("gym_admin", None)
        answer = await browser.post("/admin/login", {"_xsrf": form.xsrf(), "username": name, "password": PASSWORD,
                                                     "next": target})
        assert answer.status == 303 and answer.location == "/admin/", target


@pytest.mark.gen_test(timeout=60)
@pytest.mark.parametrize("overrides", [{"DEV_MODE": "0", "TRUSTED_PROXIES": "127.0.0.1/32"}])
async def test_cookies_are_secure_behind_a_trusted_https_proxy(api, base_url, overrides):
    browser, name = Browser(base_url), await operator("staff")
    form = await browser.get("/admin/login", headers={"X-Forwarded-Proto": "https"})
    assert "Secure" in browser.cookie_header("_xsrf")
    answer = await browser.request("POST", "/admin/login", {"_xsrf": form.xsrf(), "username": name,
                                                            "password": PASSWORD},
                                   headers={"X-Forwarded-Proto": "https"})
    assert answer.status == 303 and "; Secure" in browser.cookie_header("gym_admin")


@pytest.mark.gen_test(timeout=60)
async def test_an_untrusted_peer_saying_https_gets_no_secure_cookie(api, base_url):
    browser, name = Browser(base_url), await operator("staff")
    form = await browser.get("/admin/login", headers={"X-Forwarded-Proto": "https"})
    await browser.request("POST", "/admin/login", {"_xsrf": form.xsrf(), "username": name, "password": PASSWORD},
                          headers={"X-Forwarded-Proto": "https"})
    assert "Secure" not in browser.cookie_header("gym_admin")


@pytest.mark.gen_test(timeout=60)
async def test_posts_without_the_xsrf_token_are_refused(api, base_url):
    name = await operator("admin")
    anonymous = Browser(base_url)
    await anonymous.get("/admin/login")  # holds the _xsrf cookie, but sends no token
    refused = await anonymous.post("/admin/login", {"username": name, "password": PASSWORD})
    assert refused.status == 403 and "gym_admin" not in anonymous.cookies and "请刷新页面" in refused.text

    browser, _ = await logged_in(base_url, "admin")
    page = await browser.get("/admin/schedules")
    title = f"XSRF-{time.monotonic_ns()}"
    new_session = {"title": title, "starts_at": "2030-01-02T10:00", "capacity": "5"}
    assert (await browser.post("/admin/schedules", new_session)).status == 403
    assert (await browser.post("/admin/schedules", {**new_session, "_xsrf": "2|00|00|0"})).status == 403
    stranger = Browser(base_url)  # a token from someone else's page does not match this browser's cookie
    await stranger.get("/admin/login")
    foreign = (await stranger.get("/admin/login")).xsrf()
    assert (await browser.post("/admin/schedules", {**new_session, "_xsrf": foreign})).status == 403
    assert title not in (await browser.get("/admin/schedules")).text
    # The htmx way: the token the page gives htmx (hx-headers on <body>) in the X-XSRFToken header.
    hx_headers = json.loads(html.unescape(re.search(r"<body hx-headers='([^']+)'", page.text).group(1)))
    made = await browser.post("/admin/schedules", new_session, headers={"X-XSRFToken": hx_headers["X-XSRFToken"]})
    assert made.status == 303 and title in (await browser.get("/admin/schedules")).text


@pytest.mark.gen_test(timeout=90)
async def test_each_role_sees_and_may_use_only_its_pages(api, base_url):
    sid, _, _, order = await api.paid_order()
    order_id = order["order_id"]
    pages = {
        "/admin/": "admin finance staff", "/admin/orders": "admin finance staff",
        f"/admin/orders/{order_id}": "admin finance staff", "/admin/schedules": "admin finance staff",
        f"/admin/schedules/{sid}": "admin finance staff", f"/admin/orders/{order_id}/refund": "admin finance",
        "/admin/queue": "admin finance", "/admin/refunds": "admin finance", "/admin/notifications": "admin finance",
        "/admin/operators": "admin",
    }
    for role in ("admin", "finance", "staff"):
        browser, _ = await logged_in(base_url, role)
        for path, allowed in pages.items():
            page = await browser.get(path)
            if role in allowed.split():
                assert page.status == 200, (role, path, page.text[:500])
            else:
                assert page.status == 403 and "当前角色无权" in page.text, (role, path, page.status)
        if role == "staff":  # the audit page itself is tested below
            assert (await browser.get("/admin/audit")).status == 403
        home = await browser.get("/admin/")
        for link, allowed in (('href="/admin/refunds"', "admin finance"), ('href="/admin/operators"', "admin"),
                              ('href="/admin/audit"', "admin finance"), ('href="/admin/schedules"', "admin finance staff")):
            assert (link in home.text) == (role in allowed.split()), (role, link)
        story = await browser.get(f"/admin/orders/{order_id}")
        assert ('id="refund-button"' in story.text) == (role in ("admin", "finance")), role
        schedules = await browser.get("/admin/schedules")  # every role, as the contract gives the schedule routes
        assert 'id="new-schedule"' in schedules.text, role

    staff, _ = await logged_in(base_url, "staff")
    token = (await staff.get(f"/admin/orders/{order_id}")).xsrf()
    refused = await staff.post(f"/admin/orders/{order_id}/refund",
                               {"_xsrf": token, "step": "confirm", "amount": "200.00", "reason": "x", "key": "k-1"})
    assert refused.status == 403
    assert await Refund.select().where(Refund.idem_key == "k-1").aio_count() == 0
    finance, _ = await logged_in(base_url, "finance")
    token = (await finance.get("/admin/schedules")).xsrf()
    # Every role may create and change schedules, on the pages as in the API (contract §2: "Roles: all").
    made = await finance.post("/admin/schedules", {"_xsrf": token, "title": "财务建的课", "starts_at": "2030-01-01T10:00",
                                                   "capacity": "3"})
    assert made.status == 303 and made.location.startswith("/admin/schedules/")
    assert (await finance.post(f"/admin/schedules/{sid}", {"_xsrf": token, "title": "x", "capacity": "9"})).status == 303
    assert (await finance.post("/admin/operators", {"_xsrf": token, "username": "sneaky", "password": PASSWORD,
                                                    "role": "admin"})).status == 403


@pytest.mark.gen_test(timeout=60)
async def test_an_operator_made_inactive_is_out_at_once(api, base_url):
    browser, name = await logged_in(base_url, "staff")
    assert (await browser.get("/admin/orders")).status == 200
    admin = await api_login(api, await operator("admin"))
    status, listed, _ = await api.call("GET", "/api/v1/admin/operators?limit=200", token=admin)
    [me] = [o for o in listed["items"] if o["username"] == name]
    assert (await api.call("PATCH", f"/api/v1/admin/operators/{me['id']}", {"active": False}, token=admin))[0] == 200

    htmx = await browser.get("/admin/orders?status=paid", headers={"HX-Request": "true", "HX-Target": "results"})
    assert htmx.status == 401 and htmx.headers["HX-Redirect"] == "/admin/login?out=1"
    assert "gym_admin" not in browser.cookies
    assert (await browser.login(name)).status == 401


@pytest.mark.gen_test(timeout=60)
async def test_a_stale_session_goes_back_to_the_login_page(api, base_url):
    browser, name = await logged_in(base_url, "finance")
    browser.cookies["gym_admin"] = browser.cookies["gym_admin"][:-4] + "AAAA"  # a forged signature
    page = await browser.get("/admin/refunds")
    assert page.status == 303 and page.location.startswith("/admin/login?next=")


async def _refund_posts(api, order_id):
    items = (await api.control("GET", f"/sandbox/requests?path_prefix={REFUNDS}"))["items"]
    return [r for r in items if r["method"] == "POST" and (r.get("request_body") or {}).get("out_trade_no") == order_id]


@pytest.mark.gen_test(timeout=90)
async def test_the_refund_dialog_refunds_once_even_when_posted_twice(api, base_url):
    sid, token, _, order = await api.paid_order()
    order_id = order["order_id"]
    browser, name = await logged_in(base_url, "finance")

    dialog = await browser.get(f"/admin/orders/{order_id}/refund")
    assert dialog.status == 200 and dialog.field("amount") == "200.00" and "可退金额" in dialog.text
    key = dialog.field("key")
    typed = {"_xsrf": dialog.xsrf(), "amount": "200.00", "reason": "家长临时有事", "key": key}
    too_much = await browser.post(f"/admin/orders/{order_id}/refund", {**typed, "step": "review", "amount": "200.01"})
    assert too_much.status == 422 and "可退金额" in too_much.text
    review = await browser.post(f"/admin/orders/{order_id}/refund", {**typed, "step": "review"})
    assert review.status == 200 and "确认向家长退款" in review.text and "¥200.00" in review.text
    assert review.field("key") == key and await Refund.select().where(Refund.idem_key == key).aio_count() == 0

    confirm = {**typed, "step": "confirm"}
    first, second = await asyncio.gather(browser.post(f"/admin/orders/{order_id}/refund", confirm),
                                         browser.post(f"/admin/orders/{order_id}/refund", confirm))
    assert first.status == second.status == 200
    said = sorted(("之前已经提交过" in p.text, "退款申请已提交给微信支付" in p.text) for p in (first, second))
    assert said == [(False, True), (True, False)]
    again = await browser.post(f"/admin/orders/{order_id}/refund", confirm)
    assert "之前已经提交过" in again.text
    assert await Refund.select().where(Refund.idem_key == key).aio_count() == 1
    assert len(await _refund_posts(api, order_id)) == 1

    async def refunded():
        page = await browser.get(f"/admin/orders/{order_id}")
        return page if 'data-order-status="refunded"' in page.text else None

    story = await eventually(refunded, what="the order page to say refunded")
    assert "退款成功" in story.text and 'id="refund-button"' not in story.text
    refund = await Refund.select().where(Refund.idem_key == key).aio_get()
    row = await PaymentAuditLog.select().where((PaymentAuditLog.refund == refund.id)
                                               & (PaymentAuditLog.action_type == "refund_requested")).aio_get()
    assert row.actor == "operator" and row.operator_id == refund.operator_id and row.ip_address == "127.0.0.1"


@pytest.mark.gen_test(timeout=60)
async def test_a_refund_wechat_pay_refuses_shows_its_words_and_a_new_key(api, base_url):
    _, _, _, order = await api.paid_order()
    order_id = order["order_id"]
    await api.control("POST", "/sandbox/faults", {"path_prefix": REFUNDS, "method": "POST", "status": 403,
                                                  "code": "NOT_ENOUGH", "message": "基本账户余额不足", "count": 1})
    browser, _ = await logged_in(base_url, "admin")
    dialog = await browser.get(f"/admin/orders/{order_id}/refund",
                               headers={"HX-Request": "true", "HX-Target": "dialog"})
    assert dialog.status == 200 and "<html" not in dialog.text and 'id="refund-dialog"' in dialog.text
    key = dialog.field("key")
    answer = await browser.post(f"/admin/orders/{order_id}/refund",
                                {"amount": "200.00", "reason": "退款", "key": key, "step": "confirm"},
                                headers={"HX-Request": "true", "HX-Target": "dialog", "X-XSRFToken": dialog.xsrf()})
    assert answer.status == 409 and "微信支付拒绝了这笔退款：基本账户余额不足" in answer.text
    assert answer.field("key") != key and answer.field("amount") == "200.00"


@pytest.mark.gen_test(timeout=60)
async def test_what_comes_from_the_database_is_escaped(api, base_url):
    browser, _ = await logged_in(base_url, "staff")
    page = await browser.get("/admin/schedules")
    hostile = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    made = await browser.post("/admin/schedules", {"_xsrf": page.xsrf(), "title": hostile,
                                                  "starts_at": "2031-05-06T19:30", "capacity": "4"})
    assert made.status == 303 and made.location.endswith("?saved=created")
    session = await browser.get(made.location)
    assert session.status == 200 and "<script>alert" not in session.text and "<img src=x" not in session.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;" in session.text
    assert "2031-05-06 19:30" in session.text  # the wall-clock time typed is the gym's (Beijing)


@pytest.mark.gen_test(timeout=90)
async def test_sessions_are_made_and_changed_through_the_pages_and_audited(api, base_url):
    browser, name = await logged_in(base_url, "staff")
    page = await browser.get("/admin/schedules")
    bad = await browser.post("/admin/schedules", {"_xsrf": page.xsrf(), "title": "晚班", "starts_at": "明天",
                                                 "capacity": "5"})
    assert bad.status == 400 and "请填写开始时间" in bad.text and 'value="晚班"' in bad.text
    made = await browser.post("/admin/schedules", {"_xsrf": page.xsrf(), "title": "周六体验课",
                                                  "starts_at": "2031-01-04T09:00", "capacity": "2"})
    sid = int(re.search(r"/admin/schedules/(\d+)", made.location).group(1))
    changed = await browser.post(f"/admin/schedules/{sid}", {"_xsrf": page.xsrf(), "title": "周六体验课（加开）",
                                                            "capacity": "6"})
    assert changed.status == 303
    shown = await browser.get(changed.location)
    assert "已保存修改" in shown.text and "周六体验课（加开）" in shown.text and 'id="capacity">6<' in shown.text
    assert await api.remaining(sid) == 6
    upcoming = await browser.get("/admin/schedules")
    assert f'data-schedule-id="{sid}"' in upcoming.text
    newest = await browser.get("/admin/schedules?all=1&limit=1")  # the API's paging: newest first
    assert newest.text.count("data-schedule-id=") == 1 and f'data-schedule-id="{sid}"' in newest.text
    assert 'class="next-page"' in newest.text
    rows = list(await PaymentAuditLog.select().where(
        PaymentAuditLog.action_type.in_(("schedule_created", "schedule_capacity_changed", "schedule_title_changed"))
        & PaymentAuditLog.action_detail.contains(f"schedule {sid}")).aio_execute())
    assert {r.action_type for r in rows} == {"schedule_created", "schedule_capacity_changed", "schedule_title_changed"}
    assert all(r.actor == "operator" and r.ip_address == "127.0.0.1" and r.operator_id for r in rows)


@pytest.mark.gen_test(timeout=90)
async def test_capacity_below_the_confirmed_bookings_is_told_on_the_page(api, base_url):
    sid, _, _, _ = await api.paid_order(capacity=3)
    browser, _ = await logged_in(base_url, "admin")
    page = await browser.get(f"/admin/schedules/{sid}")
    answer = await browser.post(f"/admin/schedules/{sid}", {"_xsrf": page.xsrf(), "title": "体验课", "capacity": "0"})
    assert answer.status == 409 and "已有 1 个确认的预约" in answer.text
    assert await api.remaining(sid) == 2


@pytest.mark.gen_test(timeout=60)
async def test_admin_manages_operator_accounts(api, base_url):
    browser, admin_name = await logged_in(base_url, "admin")
    page = await browser.get("/admin/operators")
    new_name = f"front-{time.monotonic_ns()}"
    made = await browser.post("/admin/operators", {"_xsrf": page.xsrf(), "username": new_name, "password": PASSWORD,
                                                   "role": "staff"})
    assert made.status == 303
    listed = await browser.get(made.location)
    assert "已创建账号" in listed.text and new_name in listed.text
    taken = await browser.post("/admin/operators", {"_xsrf": page.xsrf(), "username": new_name, "password": PASSWORD,
                                                    "role": "staff"})
    assert taken.status == 409 and "该用户名已存在" in taken.text
    new_id = re.search(rf'data-operator-id="(\d+)" data-username="{new_name}"', listed.text).group(1)
    changed = await browser.post(f"/admin/operators/{new_id}", {"_xsrf": page.xsrf(), "role": "finance", "active": "1",
                                                                "password": ""})
    assert changed.status == 303
    promoted = Browser(base_url)
    assert (await promoted.login(new_name)).status == 303
    assert (await promoted.get("/admin/refunds")).status == 200  # finance now
    my_id = re.search(rf'data-operator-id="(\d+)" data-username="{admin_name}"', listed.text).group(1)
    myself = await browser.post(f"/admin/operators/{my_id}", {"_xsrf": page.xsrf(), "role": "admin", "active": "0"})
    assert myself.status == 400 and "不能停用自己" in myself.text
    row = await PaymentAuditLog.select().where((PaymentAuditLog.action_type == "operator_changed")
                                               & PaymentAuditLog.action_detail.contains(new_name)).aio_get()
    assert row.actor == "operator" and row.ip_address == "127.0.0.1" and row.new_status == "finance/active"


@pytest.mark.gen_test(timeout=90)
async def test_order_filters_search_fragments_and_paging(api, base_url):
    sid, _, _, first = await api.paid_order(title="筛选测试")
    token, _ = await api.login()
    status, second = await api.order(token, sid)
    assert status == 201
    browser, _ = await logged_in(base_url, "staff")

    bad = await browser.get("/admin/orders?status=lost")
    assert bad.status == 400 and "status 的取值无效" in bad.text
    found = await browser.get(f"/admin/orders?q={first['order_id']}")
    assert found.text.count('data-order-id="') == 1 and first["order_id"] in found.text

    fragment = await browser.get(f"/admin/orders?course_schedule_id={sid}&limit=1",
                                 headers={"HX-Request": "true", "HX-Target": "results"})
    assert fragment.status == 200 and "<html" not in fragment.text and second["order_id"] in fragment.text
    next_link = re.search(r'class="next-page"', fragment.text) and re.search(
        r'<a href="([^"]+)"[^>]*class="next-page"', fragment.text).group(1).replace("&amp;", "&")
    assert next_link and "cursor=" in next_link and f"course_schedule_id={sid}" in next_link
    page_two = await browser.get(next_link)
    assert page_two.status == 200 and "<html" in page_two.text and first["order_id"] in page_two.text
    assert second["order_id"] not in page_two.text and 'class="next-page"' not in page_two.text

    paid_only = await browser.get(f"/admin/orders?course_schedule_id={sid}&status=paid")
    assert first["order_id"] in paid_only.text and second["order_id"] not in paid_only.text


@pytest.mark.gen_test(timeout=60)
async def test_pages_outside_the_routes_and_assets(api, base_url):
    browser = Browser(base_url)
    missing = await browser.get("/admin/nothing-here")
    assert missing.status == 404 and "页面不存在" in missing.text and "text/html" in missing.headers["Content-Type"]
    assert (await browser.get("/admin")).status == 301
    css = await browser.get("/admin/static/backoffice.css")
    assert css.status == 200 and "text/css" in css.headers["Content-Type"]
    htmx = await browser.get("/admin/static/htmx.min.js")  # installed by scripts/bootstrap.sh, which make test runs
    assert htmx.status == 200 and "javascript" in htmx.headers["Content-Type"]
    login = await browser.get("/admin/login")
    assert '<script src="/admin/static/htmx.min.js" defer></script>' in login.text and "<script>" not in login.text
    assert (await browser.get("/admin/static/package.json")).status == 404
    assert (await browser.get("/admin/static/../../settings.py")).status in (403, 404)


@pytest.mark.gen_test(timeout=60)
async def test_home_page_tells_the_money_desk_what_waits(api, base_url):
    await api.paid_order()
    finance, _ = await logged_in(base_url, "finance")
    home = await finance.get("/admin/")
    day = dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).date().isoformat()
    assert home.status == 200 and day in home.text and 'id="fig-abnormal"' in home.text
    assert re.search(r'id="fig-booked">[1-9]', home.text) and re.search(r'id="fig-paid">¥[1-9]', home.text)
    # The seeds' figures from the metrics (a payment was just applied, so the success rate is a number).
    figures = home.text[home.text.index('id="business-figures"'):]
    assert re.search(r"支付成功率</span><strong>\d+\.\d\d%", figures) and "掉单率" in figures
    staff, _ = await logged_in(base_url, "staff")
    staff_home = await staff.get("/admin/")
    assert 'id="fig-booked"' in staff_home.text and 'id="fig-paid"' not in staff_home.text


@pytest.mark.gen_test(timeout=60)
async def test_the_audit_search_names_the_operator_of_a_refund(api, base_url):
    _, _, _, order = await api.paid_order()
    finance = await api_login(api, name := await operator("finance"))
    assert (await api.refund(finance, order["order_id"], 100))[0] == 201
    browser, _ = await logged_in(base_url, "admin")
    found = await browser.get(f"/admin/audit?order_id={order['order_id']}&action_type=refund_requested")
    assert found.status == 200, "services.backoffice.queries.list_audit answers 500 (see docs/backoffice.md)"
    assert found.text.count('data-action="refund_requested"') == 1 and f"运营人员 {name}" in found.text
    every = await browser.get(f"/admin/audit?order_id={order['order_id']}")
    assert 'data-action="order_created"' in every.text and 'data-action="payment_succeeded"' in every.text
    bad = await browser.get("/admin/audit?order_id=not-an-order")
    assert bad.status == 400 and "order_id 必须是 32 位十六进制" in bad.text
