"""Operator login lockout per username (contract §2 Operators), tried as a password guesser would: from one address
and from many, with Redis down, through the API and the back office's form; and a login flood against argon2."""
import asyncio
import re
import time
from urllib.parse import urlencode

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest

from models import OperatorLoginFailures, database, utcnow
from services.accounts.operators import provision_operator

PASSWORD = "correct-horse-battery"


@pytest.fixture
def overrides():
    # nginx's address is trusted, so X-Forwarded-For names the guesser's (each attempt from another address).
    return {"TRUSTED_PROXIES": "127.0.0.1/32"}


async def _operator(role="staff"):
    name = f"lock-{role}-{time.monotonic_ns()}"
    await provision_operator(name, PASSWORD, role)
    return name


async def _login(api, username, password, ip="203.0.113.7"):
    status, body, _ = await api.call("POST", "/api/v1/admin/login", {"username": username, "password": password},
                                     headers={"X-Forwarded-For": ip})
    return status, body


async def _audited_failures(api, admin, username):
    status, body, _ = await api.call("GET", "/api/v1/admin/audit?action_type=operator_login_failed&limit=200",
                                     token=admin)
    assert status == 200, body
    return [row for row in body["items"] if f"'{username}'" in (row["detail"] or "")]


async def _back_office_login(base_url, username, password):
    http = AsyncHTTPClient()
    form = await http.fetch(base_url + "/admin/login")
    xsrf = re.search(r'name="_xsrf" value="([^"]+)"', form.body.decode()).group(1)
    cookie = "; ".join(c.split(";")[0] for c in form.headers.get_list("Set-Cookie"))
    answer = await http.fetch(HTTPRequest(base_url + "/admin/login", method="POST", follow_redirects=False,
                                          body=urlencode({"_xsrf": xsrf, "username": username, "password": password}),
                                          headers={"Cookie": cookie}), raise_error=False)
    return answer.code, answer.body.decode()


@pytest.mark.gen_test(timeout=120)
async def test_ten_failures_lock_the_username_whatever_the_password_and_the_address(api, base_url):
    victim, bystander = await _operator(), await _operator()
    admin = await api.admin_token()
    for i in range(10):
        status, body = await _login(api, victim, f"guess-{i}", ip=f"198.51.100.{i + 1}")
        assert status == 401, body
    for password, ip in ((PASSWORD, "203.0.113.9"), ("guess-x", "198.51.100.77")):
        status, body = await _login(api, victim, password, ip=ip)
        assert status == 429 and body["error"]["code"] == "RATE_LIMITED", body
    status, page = await _back_office_login(base_url, victim, PASSWORD)
    assert status == 429 and "登录失败次数过多" in page
    assert (await _login(api, victim.upper(), PASSWORD))[0] == 429  # usernames compare as operators' do
    assert (await _login(api, bystander, PASSWORD))[0] == 200  # another username is not touched

    failures = await _audited_failures(api, admin, victim)
    assert len(failures) == 10  # one row per failed login; the 429s are not counted as failures
    assert {row["ip_address"] for row in failures} == {f"198.51.100.{i + 1}" for i in range(10)}
    assert all(row["action_type"] == "operator_login_failed" for row in failures)


@pytest.mark.gen_test(timeout=120)
async def test_an_admin_setting_the_password_lifts_the_lock_at_once(api):
    victim = await _operator()
    admin = await api.admin_token()
    for i in range(10):
        assert (await _login(api, victim, f"guess-{i}"))[0] == 401
    assert (await _login(api, victim, PASSWORD))[0] == 429
    status, body, _ = await api.call("GET", "/api/v1/admin/operators?limit=200", token=admin)
    victim_id = next(o["id"] for o in body["items"] if o["username"] == victim)
    status, body, _ = await api.call("PATCH", f"/api/v1/admin/operators/{victim_id}", {"password": "a-new-password-1"},
                                     token=admin)
    assert status == 200, body
    assert (await _login(api, victim, "a-new-password-1"))[0] == 200
    assert (await _login(api, victim, "guess-again"))[0] == 401  # counting starts again from nothing


@pytest.mark.gen_test(timeout=120)
async def test_the_lock_lasts_15_minutes_and_refused_attempts_do_not_lengthen_it(api):
    victim = await _operator()
    admin = await api.admin_token()
    for i in range(10):
        assert (await _login(api, victim, f"guess-{i}"))[0] == 401
    row = await OperatorLoginFailures.select().where(OperatorLoginFailures.username == victim).aio_get()
    minutes = (row.locked_until - utcnow()).total_seconds() / 60
    assert 14.9 < minutes <= 15
    for i in range(5):
        assert (await _login(api, victim, PASSWORD if i % 2 else f"more-{i}"))[0] == 429
    again = await OperatorLoginFailures.select().where(OperatorLoginFailures.username == victim).aio_get()
    assert again.locked_until == row.locked_until
    assert len(await _audited_failures(api, admin, victim)) == 10
    # Fifteen minutes pass (the lock's end moved back, as the clock would have moved on):
    await database.aio_execute_sql("UPDATE `operator_login_failures` SET `locked_until` = %s WHERE `username` = %s",
                                   (utcnow(), victim))
    assert (await _login(api, victim, PASSWORD))[0] == 200
    for i in range(9):  # the window starts afresh: nine failures lock nothing
        assert (await _login(api, victim, f"later-{i}"))[0] == 401
    assert (await _login(api, victim, PASSWORD))[0] == 200


@pytest.mark.gen_test(timeout=120)
async def test_a_username_that_is_no_operator_locks_alike(api):
    """Otherwise the lock would tell a guesser which usernames exist."""
    for i in range(10):
        assert (await _login(api, "no-such-operator", f"guess-{i}"))[0] == 401
    assert (await _login(api, "no-such-operator", "guess-x"))[0] == 429


@pytest.mark.gen_test(timeout=120)
async def test_a_login_flood_gets_quick_503s_and_never_queues_the_hashing(api):
    """60 logins at once with wrong passwords for random usernames: argon2 runs two at a time, eight are admitted,
    the rest answered 503 (with Retry-After) at once instead of waiting in a queue; an operator retrying gets in
    while the flood is still being hashed."""
    victim = await _operator()

    async def timed(i):
        started = time.monotonic()
        status, body, headers = await api.call("POST", "/api/v1/admin/login",
                                               {"username": f"flood-{i}", "password": "wrong-password"})
        return status, time.monotonic() - started, headers.get("Retry-After")

    flood = [asyncio.ensure_future(timed(i)) for i in range(60)]
    while True:  # the operator retries a 503, as the back office tells them to
        status, _ = await _login(api, victim, PASSWORD)
        if status == 200:
            break
        assert status == 503
        await asyncio.sleep(0.2)  # a person's retry, not a wait for a condition
    answers = await asyncio.gather(*flood)
    statuses = [a[0] for a in answers]
    assert set(statuses) <= {401, 503} and statuses.count(401) >= 1 and statuses.count(503) >= 30
    assert all(retry == "1" for status, _, retry in answers if status == 503)
    slowest_refusal = max(seconds for status, seconds, _ in answers if status == 503)
    slowest_check = max(seconds for status, seconds, _ in answers if status == 401)
    assert slowest_refusal < slowest_check  # a 503 never waited for a hash


class TestWhileRedisIsDown:
    """Redis down: the per-address limit (Redis) is skipped, the per-username lock (MySQL) is not."""

    @pytest.fixture
    def overrides(self):
        return {"REDIS_URL": "redis://127.0.0.1:9/0", "RATE_LIMIT_PER_MINUTE": "60", "TRUSTED_PROXIES": "127.0.0.1/32"}

    @pytest.mark.gen_test(timeout=120)
    async def test_the_lock_holds(self, api):
        status, ready, _ = await api.call("GET", "/readyz")
        assert ready["redis"] == "down"
        victim = await _operator()
        for i in range(10):
            assert (await _login(api, victim, f"guess-{i}"))[0] == 401
        assert (await _login(api, victim, PASSWORD))[0] == 429
