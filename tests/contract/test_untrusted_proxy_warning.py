"""Behind a reverse proxy that TRUSTED_PROXIES does not name, every client looks like the proxy (one login bucket for
all, /metrics and the audit IP wrong): requests carrying X-Forwarded-For from an untrusted peer are warned about
loudly in the log (once, not per request) and named in /readyz, which stays 200."""
from __future__ import annotations

import pytest

from tests.api import Api
from tests.harness import ServiceProcess


def _service(service_env, trusted, name):
    env = {**service_env, "TRUSTED_PROXIES": trusted}
    env.pop("PORT")
    return ServiceProcess(env, name=name)


def _log(service):
    with open(service.log_path, encoding="utf-8", errors="replace") as fh:
        return fh.read()


@pytest.mark.gen_test(timeout=90)
async def test_forwarded_requests_from_an_untrusted_peer_are_warned_about_and_shown(service_env, sandbox, db):
    service = _service(service_env, "", "proxy-untrusted")
    try:
        api = Api(service.url, sandbox)
        status, ready, _ = await api.call("GET", "/readyz")
        assert status == 200 and ready == {"mysql": "ok", "redis": "ok"}  # the contract's body while all is well
        for _ in range(20):  # nginx in front, TRUSTED_PROXIES forgotten
            status, _, _ = await api.call("GET", "/api/v1/courses/schedules", headers={"X-Forwarded-For": "203.0.113.5"})
            assert status == 200
        status, ready, _ = await api.call("GET", "/readyz")
        assert status == 200 and ready["mysql"] == "ok" and "TRUSTED_PROXIES" in ready["trusted_proxies"]
    finally:
        service.stop()
    log = _log(service)
    assert "TRUSTED_PROXIES is empty" in log  # at start
    warnings = [line for line in log.splitlines() if "X-Forwarded-For from a peer outside TRUSTED_PROXIES" in line]
    assert len(warnings) == 1 and "WARNING" in warnings[0] and "peer 127.0.0.1" in warnings[0]


@pytest.mark.gen_test(timeout=90)
async def test_a_trusted_proxy_raises_nothing(service_env, sandbox, db):
    service = _service(service_env, "127.0.0.1/32", "proxy-trusted")
    try:
        api = Api(service.url, sandbox)
        for _ in range(5):
            status, _, _ = await api.call("GET", "/api/v1/courses/schedules", headers={"X-Forwarded-For": "203.0.113.5"})
            assert status == 200
        status, ready, _ = await api.call("GET", "/readyz")
        assert status == 200 and ready == {"mysql": "ok", "redis": "ok"}
    finally:
        service.stop()
    assert "outside TRUSTED_PROXIES" not in _log(service) and "TRUSTED_PROXIES is empty" not in _log(service)
