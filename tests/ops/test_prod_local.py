"""Production-like: Debian's nginx with TLS (deploy/nginx/gym.conf via scripts/prod-local.sh) in front of WORKERS=2.

The client talks HTTPS and WSS to nginx from 127.0.0.5 (another loopback address), so the service can tell the
client's address, passed on by the trusted proxy, from the proxy's own (127.0.0.1). The sandbox delivers its
notifications to the HTTPS notify URL through nginx, trusting the self-signed certificate.
"""
import json
import os
import shutil
import subprocess

import pytest
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from models import PaymentAuditLog
from tests.api import Api, eventually
from tests.harness import ROOT, VAR, SandboxProcess, ServiceProcess, free_port

CLIENT_IP = "127.0.0.5"


def _prod_local(*args, check=True):
    return subprocess.run(["bash", "scripts/prod-local.sh", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=300, check=check)


@pytest.fixture(scope="module")
def behind_nginx(server_env, fresh_schema):
    """nginx (TLS) → service (WORKERS=2, TRUSTED_PROXIES=127.0.0.1/32) → its own sandbox notifying over HTTPS."""
    work = os.path.join(VAR, "test", f"prod-local-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    https_port, http_port = free_port(), free_port()
    rendered = _prod_local("render", "--upstream", "127.0.0.1:1", "--dir", work)  # makes the certificate first
    assert rendered.returncode == 0, rendered.stderr
    bundle = os.path.join(work, "tls", "ca-bundle.pem")
    with open(bundle, "w") as out:
        for part in ("/etc/ssl/certs/ca-certificates.crt", os.path.join(work, "tls", "cert.pem")):
            if os.path.exists(part):
                with open(part) as fh:
                    out.write(fh.read())
    sandbox = SandboxProcess(os.path.join(work, "sandbox"), extra_args=("--clear-state",),
                             env={"SSL_CERT_FILE": bundle})
    base = f"https://127.0.0.1:{https_port}"
    env = {**server_env, **{k: v for k, v in sandbox.env.items() if k.startswith("WECHAT")},
           "WORKERS": "2", "TRUSTED_PROXIES": "127.0.0.1/32", "LOG_FORMAT": "json", "RATE_LIMIT_PER_MINUTE": "0",
           "WECHATPAY_CERT_DIR": os.path.join(work, "certs"), "PROMETHEUS_MULTIPROC_DIR": os.path.join(work, "prom"),
           "WECHATPAY_NOTIFY_URL": f"{base}/api/v1/payment/wxpay/callback",
           "WECHATPAY_REFUND_NOTIFY_URL": f"{base}/api/v1/payment/wxpay/refund-callback"}
    service = ServiceProcess(env, name="behind-nginx")
    started = _prod_local("nginx-only", "--upstream", f"127.0.0.1:{service.port}", "--https-port", str(https_port),
                          "--http-port", str(http_port), "--dir", work, check=False)
    assert started.returncode == 0, started.stderr
    info = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    try:
        yield {"base": base, "ca": info["PROD_LOCAL_CA_CERT"], "sandbox": sandbox, "service": service,
               "http": f"http://127.0.0.1:{http_port}"}
    finally:
        _prod_local("stop", "--dir", work, check=False)
        service.stop()
        sandbox.stop()


class ThroughNginx(Api):
    """The API client, over HTTPS to nginx, from CLIENT_IP, trusting the self-signed certificate."""

    def __init__(self, setup):
        super().__init__(setup["base"], setup["sandbox"])
        self.ca = setup["ca"]

    async def call(self, method, path, body=None, token=None, headers=None, raw=None, base=None):
        if base is not None:  # the sandbox's control API: plain HTTP, directly
            return await super().call(method, path, body, token, headers, raw, base)
        hdrs = dict(headers or {})
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        if body is not None:
            hdrs.setdefault("Content-Type", "application/json")
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        if method in ("POST", "PUT", "PATCH") and data is None:
            data = b""
        request = HTTPRequest(self.base_url + path, method=method, body=data, headers=hdrs, ca_certs=self.ca,
                              network_interface=CLIENT_IP, request_timeout=30)
        resp = await AsyncHTTPClient().fetch(request, raise_error=False)
        content = resp.body or b""
        parsed = json.loads(content) if content and "json" in resp.headers.get("Content-Type", "") else content
        return resp.code, parsed, resp.headers

    async def admin_token(self, role="admin"):
        from services.accounts.operators import provision_operator

        await provision_operator(f"nginx-{role}", "correct-horse-battery", role)
        status, data, _ = await self.call("POST", "/api/v1/admin/login",
                                          {"username": f"nginx-{role}", "password": "correct-horse-battery"})
        assert status == 200, data
        return data["token"]


@pytest.mark.gen_test(timeout=120)
async def test_a_booking_paid_through_nginx_over_tls(behind_nginx, db):
    api = ThroughNginx(behind_nginx)
    sid = await api.schedule(capacity=3)
    token, openid = await api.login()
    status, order = await api.order(token, sid)
    assert status == 201
    status, params = await api.prepay(token, order["order_id"])
    assert status == 200 and params["package"].startswith("prepay_id=")
    socket = await websocket_connect(HTTPRequest(behind_nginx["base"].replace("https", "wss") + "/ws/orders?token="
                                                 + token, ca_certs=api.ca, network_interface=CLIENT_IP))
    socket.write_message(json.dumps({"op": "subscribe", "order_id": order["order_id"]}))
    assert json.loads(await socket.read_message())["status"] == "pending"
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})
    while True:
        frame = json.loads(await socket.read_message())
        if frame["status"] == "paid":
            break
    socket.close()

    async def first_attempt_answered():
        # The push goes out while the service answers the notification: the sandbox may not have the answer yet.
        items = (await api.control("GET", f"/sandbox/notifications?out_trade_no={order['order_id']}"))["items"]
        return items if items and "status" in items[0]["attempts"][0] else None

    sent = await eventually(first_attempt_answered, timeout=10, what="the sandbox to record the callback's answer")
    assert sent[0]["notify_url"].startswith("https://") and sent[0]["attempts"][0]["status"] == 204
    assert (await api.get_order(token, order["order_id"]))["reservation"]["status"] == "confirmed"


@pytest.mark.gen_test(timeout=60)
async def test_nginx_refuses_a_large_body_and_the_audit_names_the_client(behind_nginx, db):
    api = ThroughNginx(behind_nginx)
    status, body, _ = await api.call("POST", "/api/v1/auth/login", raw=b"{" + b" " * (1 << 20) + b"}",
                                     headers={"Content-Type": "application/json"})
    assert status == 413 and body["error"]["code"] == "PAYLOAD_TOO_LARGE"
    sid = await api.schedule()
    token, _ = await api.login()
    status, _, headers = await api.call("POST", "/api/v1/payment/orders/create",
                                        {"course_schedule_id": sid, "amount": "1.00"}, token=token,
                                        headers={"X-Forwarded-For": "198.51.100.9", "X-Request-ID": "via-nginx-1"})
    assert status == 422 and headers["X-Request-ID"] == "via-nginx-1"
    row = await PaymentAuditLog.select().where(PaymentAuditLog.request_id == "via-nginx-1").aio_get()
    assert row.action_type == "amount_mismatch" and row.ip_address == CLIENT_IP  # not nginx's, not the forged one
    status, _, _ = await api.call("GET", "/metrics")
    assert status == 404  # only the Prometheus host may read it
    plain = await AsyncHTTPClient().fetch(behind_nginx["http"] + "/healthz", raise_error=False,
                                          follow_redirects=False)
    assert plain.code == 301 and plain.headers["Location"].startswith("https://")
