"""The `method` label of the HTTP metrics is one of the methods the route serves, or `other`: a client sending
made-up methods (`curl -X QZXA /healthz`) cannot create series."""
from __future__ import annotations

import secrets

import pytest

from tests.api import Api
from tests.harness import ServiceProcess
from tests.prometheus_text import samples


@pytest.fixture
def service(service_env, db, tmp_path):
    """The service as production runs it (its own process and metrics directory)."""
    env = {**service_env, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics")}
    env.pop("PORT")
    proc = ServiceProcess(env, name="metric-methods")
    yield proc
    proc.stop()


HTTP_SAMPLES = ("gym_http_requests_total", "gym_http_request_duration_seconds_bucket",
                "gym_http_request_duration_seconds_sum", "gym_http_request_duration_seconds_count")


def _methods(text) -> set:
    return {dict(labels)["method"] for name, labels in samples(text) if name in HTTP_SAMPLES
            and "method" in dict(labels)}


def _count(text, **labels) -> float:
    return sum(value for (name, found), value in samples(text).items()
               if name == "gym_http_requests_total" and all(dict(found).get(k) == v for k, v in labels.items()))


@pytest.mark.gen_test(timeout=60)
async def test_made_up_methods_create_no_series(service, sandbox, settings):
    api = Api(service.url, sandbox)
    _, before, _ = await api.call("GET", "/metrics")
    before = before.decode()
    made_up = [f"Q{secrets.token_hex(4).upper()}" for _ in range(30)]
    for method in made_up:
        status, body, _ = await api.call(method, "/healthz")
        assert status == 405 and body["error"]["code"] == "METHOD_NOT_ALLOWED"
        assert (await api.call(method, "/api/v1/no/such/route"))[0] in (404, 405)
        too_big = b"x" * (settings.max_body_bytes + 1)  # refused before any handler runs
        assert (await api.call(method, "/api/v1/auth/login", raw=too_big))[0] == 413
    for method in ("DELETE", "PUT"):  # a real method the route does not serve
        assert (await api.call(method, "/healthz"))[0] == 405
    _, after, _ = await api.call("GET", "/metrics")
    after = after.decode()
    methods = _methods(after)
    assert not methods & set(made_up)
    assert methods <= {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "other"}
    assert _count(after, route="/healthz", method="DELETE") == _count(before, route="/healthz", method="DELETE") == 0
    grew = _count(after, route="/healthz", method="other", status="405") - _count(
        before, route="/healthz", method="other", status="405")
    assert grew == len(made_up) + 2
    assert _count(after, route="body_limit", method="other") >= len(made_up)
