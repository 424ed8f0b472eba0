"""TRUSTED_PROXIES: only a peer inside those CIDRs has its X-Forwarded-For believed (audit IP and rate limits)."""
import pytest

from models import PaymentAuditLog


async def _mismatch_ip(api, token, sid, forwarded):
    """Send a wrong amount (audited with the client's address) and return the address the audit row names."""
    status, _, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid, "amount": "1"},
                                  token=token, headers={"X-Forwarded-For": forwarded} if forwarded else None)
    assert status == 422
    row = await PaymentAuditLog.select().where(PaymentAuditLog.action_type == "amount_mismatch") \
        .order_by(PaymentAuditLog.id.desc()).aio_first()
    return row.ip_address


async def _fresh_window(api):
    import redis.asyncio as aioredis

    r = aioredis.from_url(api.redis_url)
    await r.flushdb()  # a fresh minute window: other tests' logins from 127.0.0.1 count too
    await r.aclose()


async def _login_statuses(api, forwarded, n):
    statuses = []
    for _ in range(n):
        status, _, _ = await api.call("POST", "/api/v1/auth/login", {"code": "not-a-real-code"},
                                      headers={"X-Forwarded-For": forwarded})
        statuses.append(status)
    return statuses


class TestBehindATrustedProxy:
    @pytest.fixture
    def overrides(self):
        return {"TRUSTED_PROXIES": "127.0.0.1/32, 10.0.0.0/8", "RATE_LIMIT_PER_MINUTE": "0"}

    @pytest.mark.gen_test(timeout=60)
    async def test_the_audit_log_names_the_client_not_the_proxy(self, api):
        sid = await api.schedule()
        token, _ = await api.login()
        assert await _mismatch_ip(api, token, sid, "203.0.113.7") == "203.0.113.7"
        # Right-most untrusted hop: what the client itself wrote on the left is not believed.
        assert await _mismatch_ip(api, token, sid, "198.51.100.1, 203.0.113.8") == "203.0.113.8"
        # Hops through trusted proxies are skipped.
        assert await _mismatch_ip(api, token, sid, "203.0.113.9, 10.1.2.3") == "203.0.113.9"
        # A malformed hop ends the walk at the last address we could trust.
        assert await _mismatch_ip(api, token, sid, "junk, 10.1.2.3") == "10.1.2.3"
        assert await _mismatch_ip(api, token, sid, None) == "127.0.0.1"


class TestRateLimitsBehindATrustedProxy:
    @pytest.fixture
    def overrides(self):
        return {"TRUSTED_PROXIES": "127.0.0.1/32", "RATE_LIMIT_PER_MINUTE": "3"}

    @pytest.mark.gen_test(timeout=60)
    async def test_each_client_behind_the_proxy_has_its_own_rate_limit(self, api):
        await _fresh_window(api)
        assert await _login_statuses(api, "203.0.113.20", 4) == [401, 401, 401, 429]
        assert await _login_statuses(api, "203.0.113.21", 1) == [401]


class TestWithNoProxyTrusted:
    @pytest.fixture
    def overrides(self):
        return {"RATE_LIMIT_PER_MINUTE": "3"}

    @pytest.mark.gen_test(timeout=60)
    async def test_x_forwarded_for_is_ignored(self, api):
        sid = await api.schedule()
        token, _ = await api.login()  # one order attempt: under the user's limit
        assert await _mismatch_ip(api, token, sid, "203.0.113.7") == "127.0.0.1"

    @pytest.mark.gen_test(timeout=60)
    async def test_a_forged_header_does_not_escape_the_rate_limit(self, api):
        await _fresh_window(api)
        statuses = [(await _login_statuses(api, f"203.0.113.{i}", 1))[0] for i in range(4)]
        assert statuses == [401, 401, 401, 429]
