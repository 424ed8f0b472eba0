"""Rate limits: per client IP on login, per user on order creation."""
import pytest


@pytest.fixture
def overrides():
    return {"RATE_LIMIT_PER_MINUTE": "3"}


@pytest.mark.gen_test
async def test_login_is_rate_limited_per_ip(api):
    statuses = []
    for _ in range(5):
        status, body, _ = await api.call("POST", "/api/v1/auth/login", {"code": "x"})
        statuses.append(status)
    assert 429 in statuses
    assert body["error"]["code"] == "RATE_LIMITED"


@pytest.mark.gen_test
async def test_order_creation_is_rate_limited_per_user(api, sandbox):
    import redis.asyncio as aioredis

    r = aioredis.from_url(api.redis_url)
    await r.flushdb()  # a fresh minute window for the logins below
    await r.aclose()
    sid = await api.schedule()
    code = (await api.control("POST", "/sandbox/wx/login", {}))["code"]
    status, body, _ = await api.call("POST", "/api/v1/auth/login", {"code": code})
    assert status == 200
    token = body["token"]
    statuses = [(await api.order(token, sid))[0] for _ in range(5)]
    assert statuses[:3] == [201, 200, 200] and statuses[3:] == [429, 429]
