"""Operations: health, readiness, settings validation, and the JSON error body for bad input."""
import os
import subprocess
import sys

import pytest

from tests.harness import ROOT


@pytest.mark.gen_test
async def test_healthz_and_readyz(api):
    status, body, _ = await api.call("GET", "/healthz")
    assert status == 200
    status, body, _ = await api.call("GET", "/readyz")
    assert status == 200
    assert body == {"mysql": "ok", "redis": "ok"}


@pytest.mark.gen_test
async def test_unknown_route_and_bad_json_answer_contract_errors(api):
    status, body, _ = await api.call("GET", "/api/v1/nothing-here")
    assert status == 404 and body["error"]["code"] == "NOT_FOUND"
    token, _ = await api.login()
    status, body, _ = await api.call("POST", "/api/v1/payment/orders/create", raw=b"{not json",
                                     token=token, headers={"Content-Type": "application/json"})
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"
    status, body, _ = await api.call("POST", "/api/v1/payment/orders/create", raw=b"[1,2]", token=token)
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"
    status, body = await api.order(token, "abc")
    assert status == 400 and body["error"]["code"] == "INVALID_REQUEST"


@pytest.fixture
def overrides():
    return {"MAX_BODY_BYTES": "1024"}


@pytest.mark.gen_test
async def test_body_over_the_limit_is_413(api):
    token, _ = await api.login()
    status, body, _ = await api.call("POST", "/api/v1/payment/orders/create",
                                     {"course_schedule_id": 1, "pad": "x" * 2000}, token=token)
    assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"


@pytest.mark.parametrize("name,value,expected", [
    ("DATABASE_URL", None, "DATABASE_URL is not set"),
    ("DATABASE_URL", "postgres://x@y/z", "DATABASE_URL must look like"),
    ("PORT", "eighty", "PORT must be an integer"),
    ("WECHATPAY_APIV3_KEY", "short", "WECHATPAY_APIV3_KEY must be 32 bytes"),
    ("SEAT_HOLD_SECONDS", "-5", "SEAT_HOLD_SECONDS must be >= 1"),
])
def test_a_bad_setting_stops_the_start_with_one_line(sandbox, server_env, name, value, expected):
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("WECHAT", "DATABASE", "REDIS"))},
           **server_env, **sandbox.env}
    if value is None:
        env.pop(name, None)
    else:
        env[name] = value
    proc = subprocess.run([sys.executable, "server.py"], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=30)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], proc.stderr


def test_sigterm_drains_and_stops_cleanly(service_env):
    from tests.harness import ServiceProcess, http_json

    env = dict(service_env)
    env.pop("PORT")
    proc = ServiceProcess(env, name="sigterm")
    assert http_json("GET", proc.url + "/readyz")[0] == 200
    proc.stop()
    assert proc.proc.returncode == 0
    with open(proc.log_path, encoding="utf-8") as fh:
        log = fh.read()
    assert "shutting down" in log and "stopped" in log and "Traceback" not in log
