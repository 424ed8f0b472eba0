"""No secret reaches the service's log (contract §2 Operations): not the app secret or a js_code (jscode2session puts
both in its query string), not an access token (the subscribe-message call), not a user token (the WebSocket's
`?token=`), not an operator's password or token, not the parent's openid or the data key — at DEBUG, where the
libraries say the most."""
import json
import os
import re

import pytest
from tornado.websocket import websocket_connect

from tests.api import Api, eventually
from tests.harness import ServiceProcess


@pytest.fixture
def service(service_env, sandbox, db):
    env = {**service_env, "LOG_LEVEL": "DEBUG", "RECONCILE_INTERVAL_SECONDS": "0.5"}
    env.pop("PORT")
    proc = ServiceProcess(env, name="secrets")
    yield proc
    proc.stop()


def _leaks(text, secrets):
    found = [name for name, value in secrets.items() if value and value in text]
    patterns = (r"(secret|access_token|js_code)=[A-Za-z0-9_-]{6}", r"[?&]token=[A-Za-z0-9_.-]{16}",
                r"(?i)bearer [A-Za-z0-9_.-]{16}")
    found += [p for p in patterns if re.search(p, text)]
    return found


@pytest.mark.gen_test(timeout=90)
async def test_a_whole_booking_leaves_no_secret_in_the_log(service, sandbox, service_env):
    sandbox_log = os.path.join(sandbox.state_dir, "sandbox.log")
    sandbox_start = os.path.getsize(sandbox_log)  # the sandbox (WeChat's side, but our log too) from here on
    api = Api(service.url, sandbox)
    minted = await api.control("POST", "/sandbox/wx/login", {})
    status, login, _ = await api.call("POST", "/api/v1/auth/login", {"code": minted["code"]})
    assert status == 200, login
    token = login["token"]
    admin = await api.admin_token()
    sid = await api.schedule()
    status, order = await api.order(token, sid)
    assert status == 201
    assert (await api.prepay(token, order["order_id"]))[0] == 200
    conn = await websocket_connect(service.url.replace("http://", "ws://") + "/ws/orders?token=" + token)
    conn.write_message(json.dumps({"op": "subscribe", "order_id": order["order_id"]}))
    await conn.read_message()
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

    async def notice_sent():
        return [m for m in (await api.control("GET", "/sandbox/messages"))["items"]
                if m.get("touser") == minted["openid"]]

    await eventually(notice_sent, timeout=20, what="the 预约成功 message (an access token was used)")
    conn.close()
    await api.call("POST", "/api/v1/admin/login", {"username": "nobody", "password": "hunter2-hunter2"})
    service.stop()
    with open(service.log_path, encoding="utf-8", errors="replace") as fh:
        text = fh.read()
    assert "jscode2session" in text or "GET" in text  # the log is not empty: the libraries did speak
    secrets = {"WECHAT_APP_SECRET": service_env["WECHAT_APP_SECRET"], "js_code": minted["code"], "user token": token,
               "operator token": admin, "password": "hunter2-hunter2", "SECRET_KEY": service_env["SECRET_KEY"]}
    with open(service_env["DATA_KEY_FILE"], encoding="ascii") as fh:
        data_key = fh.read().strip()
    with open(service_env["AUDIT_KEY_FILE"], encoding="ascii") as fh:
        audit_key = fh.read().strip()
    assert _leaks(text, {**secrets, "openid": minted["openid"], "DATA_KEY_FILE": data_key,
                         "AUDIT_KEY_FILE": audit_key}) == []
    with open(sandbox_log, encoding="utf-8", errors="replace") as fh:
        fh.seek(sandbox_start)
        assert _leaks(fh.read(), secrets) == []
