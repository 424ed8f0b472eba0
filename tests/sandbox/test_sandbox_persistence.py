"""State survives a restart (SIGTERM or kill -9): orders, refunds, refund timers, pending notifications, tokens,
bill controls and issued bill files."""
from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import threading

import httpx
import pytest

from tests.harness import VAR, SandboxProcess, http_json, wait_until
from tests.sandbox.bills import at, day_ago, paid_order
from tests.sandbox.wx import jsapi_order, make_client, new_trade_no, signed_call, with_client

STATE_DIR = os.path.join(VAR, "test", f"sandbox-persistence-{os.getpid()}")


@pytest.fixture
def processes():
    """Start sandboxes on one state dir (the first one emptied); every one still running is stopped at the end."""
    started = []

    def start(clear=False):
        proc = SandboxProcess(STATE_DIR, time_scale=0.01, extra_args=("--clear-state",) if clear else ())
        started.append(proc)
        return proc

    yield start
    for proc in started:
        if proc.proc.poll() is None:
            proc.stop()


def stop(proc, how):
    """SIGTERM (a clean stop), or SIGKILL: no chance to finish a write, checkpoint or close anything."""
    if how == "terminate":
        proc.stop()
        assert proc.proc.returncode == 0
    else:
        proc.proc.kill()
        proc.proc.wait(10)
        proc.log.close()


def notification(proc, no):
    """The one notification of order `no`."""
    [note] = proc.control("GET", f"/sandbox/notifications?out_trade_no={no}&event_type=TRANSACTION.SUCCESS")["items"]
    return note


@pytest.mark.parametrize("how", ["terminate", "kill"])
def test_order_refund_and_pending_notification_survive_a_restart(processes, receiver, how):
    first = processes(clear=True)
    path = f"/persist-{how}"
    receiver.script(path, [500] * 100)
    no = new_trade_no("S")
    expire = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(hours=1)).replace(microsecond=0).isoformat()
    with_client(first, "pubkey")(lambda c: c.pay(**jsapi_order(first, no, receiver.url(path), time_expire=expire)))
    first.control("POST", "/sandbox/config", {"refund_auto_settle": False})
    first.control("POST", f"/sandbox/orders/{no}/pay", {})
    wait_until(lambda: len(notification(first, no)["attempts"]) >= 2, what="two refused deliveries")
    refund_url = receiver.url(path + "/refund")
    (status, text), _ = with_client(first, "pubkey")(lambda c: c.refund(
        "RS-" + no, {"refund": 300, "total": 20000, "currency": "CNY"}, out_trade_no=no, notify_url=refund_url))
    assert status == 200 and json.loads(text)["status"] == "PROCESSING"
    order_before = first.control("GET", f"/sandbox/orders/{no}")
    refund_before = first.control("GET", f"/sandbox/refunds/RS-{no}")
    note_before = notification(first, no)
    assert note_before["status"] == "pending"
    attempts_before = [a for a in note_before["attempts"] if "elapsed_ms" in a]

    stop(first, how)
    receiver.script(path, [])  # the merchant is fixed meanwhile: it now answers 204
    second = processes()

    assert second.control("GET", f"/sandbox/orders/{no}") == order_before
    assert order_before["prepay_id"] and order_before["time_expire"] and order_before["transaction_id"]
    assert second.control("GET", f"/sandbox/refunds/RS-{no}") == refund_before

    async def queries(client):
        return (await client.query(out_trade_no=no), await client.query(transaction_id=order_before["transaction_id"]),
                await client.query_refund("RS-" + no))

    (by_no, by_id, refund), _ = with_client(second, "pubkey")(queries)
    assert by_no == by_id and by_no[0] == 200 and json.loads(by_no[1]) == order_before["transaction"]
    assert json.loads(refund[1])["refund_id"] == refund_before["refund_id"]
    assert json.loads(refund[1])["status"] == "PROCESSING"

    wait_until(lambda: notification(second, no)["status"] == "delivered", timeout=20, what="the resumed delivery")
    note = notification(second, no)
    assert note["attempts"][:len(attempts_before)] == attempts_before
    assert note["attempts"][-1]["status"] == 204 and len(note["attempts"]) > len(attempts_before)
    deliveries = receiver.received(path)
    client = make_client(second, "pubkey")
    first_event, last_event = (client.callback(d["headers"], d["body"]) for d in (deliveries[0], deliveries[-1]))
    assert first_event["id"] == last_event["id"] == note["id"]
    assert deliveries[-1]["headers"]["Wechatpay-Nonce"] != deliveries[0]["headers"]["Wechatpay-Nonce"]

    second.control("POST", f"/sandbox/refunds/RS-{no}/settle", {"result": "SUCCESS"})
    [settled] = receiver.wait_for(path + "/refund")
    assert client.callback(settled["headers"], settled["body"])["resource"]["refund_status"] == "SUCCESS"
    assert second.control("GET", f"/sandbox/orders/{no}")["trade_state"] == "REFUND"


def test_refund_timer_resumes_after_kill(processes, receiver):
    first = processes(clear=True)
    first.control("POST", "/sandbox/config", {"refund_settle_seconds": 300})  # x 0.01: 3 real seconds
    no = new_trade_no("K")
    with_client(first, "pubkey")(lambda c: c.pay(**jsapi_order(first, no, receiver.url("/timer-pay"))))
    first.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False})
    with_client(first, "pubkey")(lambda c: c.refund("RT-" + no, {"refund": 20000, "total": 20000, "currency": "CNY"},
                                                    out_trade_no=no, notify_url=receiver.url("/timer-refund")))
    pending = first.control("GET", f"/sandbox/refunds/RT-{no}")
    assert pending["status"] == "PROCESSING" and pending["settle_due_in_seconds"] > 1
    stop(first, "kill")
    second = processes()
    assert second.control("GET", f"/sandbox/refunds/RT-{no}")["settle_due_in_seconds"] is not None
    [note] = receiver.wait_for("/timer-refund", timeout=15)
    event = make_client(second, "pubkey").callback(note["headers"], note["body"])
    assert event["event_type"] == "REFUND.SUCCESS" and event["resource"]["out_refund_no"] == "RT-" + no
    assert second.control("GET", f"/sandbox/orders/{no}")["trade_state"] == "REFUND"


def test_login_codes_tokens_and_messages_survive_a_restart(processes):
    first = processes(clear=True)
    env = first.env
    minted = first.control("POST", "/sandbox/wx/login", {})
    unused = first.control("POST", "/sandbox/wx/login", {"openid": minted["openid"]})["code"]
    token = http_json("GET", f"{first.url}/cgi-bin/token?grant_type=client_credential&appid={env['WECHAT_APPID']}"
                             f"&secret={env['WECHAT_APP_SECRET']}")[1]["access_token"]
    stable_body = {"grant_type": "client_credential", "appid": env["WECHAT_APPID"], "secret": env["WECHAT_APP_SECRET"]}
    stable = http_json("POST", f"{first.url}/cgi-bin/stable_token", stable_body)[1]["access_token"]
    message = {"touser": minted["openid"], "template_id": "T1", "data": {"thing1": {"value": "体验课"}}}
    sent = http_json("POST", f"{first.url}/cgi-bin/message/subscribe/send?access_token={token}", message)[1]
    assert sent["errcode"] == 0
    stop(first, "terminate")
    second = processes()
    session = http_json("GET", f"{second.url}/sns/jscode2session?appid={env['WECHAT_APPID']}"
                               f"&secret={env['WECHAT_APP_SECRET']}&js_code={unused}&grant_type=authorization_code")[1]
    assert session["openid"] == minted["openid"]
    assert http_json("POST", f"{second.url}/cgi-bin/stable_token", stable_body)[1]["access_token"] == stable
    again = http_json("POST", f"{second.url}/cgi-bin/message/subscribe/send?access_token={token}", message)[1]
    assert again["errcode"] == 0 and again["msgid"] > sent["msgid"]
    assert [m.get("msgid") for m in second.control("GET", "/sandbox/messages")["items"]] == [sent["msgid"],
                                                                                             again["msgid"]]


def test_kill_9_under_load_keeps_every_acknowledged_order(processes):
    proc = processes(clear=True)
    for _ in range(3):
        acknowledged, paid, halt = {}, set(), threading.Event()
        threads = [threading.Thread(target=_place_orders, args=(proc, acknowledged, paid, halt)) for _ in range(4)]
        for thread in threads:
            thread.start()
        wait_until(lambda: len(paid) >= 10, timeout=30, what="orders placed and paid under load")
        stop(proc, "kill")
        halt.set()
        for thread in threads:
            thread.join(30)
        proc = processes()
        orders = {o["out_trade_no"]: o for o in proc.control("GET", "/sandbox/orders")["items"]}
        assert all(orders[no]["prepay_id"] == prepay_id for no, prepay_id in list(acknowledged.items()))
        assert all(orders[no]["trade_state"] == "SUCCESS" for no in list(paid))
        paid_notes = {n["out_trade_no"] for n in proc.control("GET", "/sandbox/notifications")["items"]}
        assert set(paid) <= paid_notes, "a paid order lost its notification"


def _place_orders(proc, acknowledged, paid, halt):
    """Place and pay orders until `halt`; record what the sandbox acknowledged (the process dies meanwhile)."""
    env = proc.env
    while not halt.is_set():
        no = new_trade_no("L")
        body = {"appid": env["WECHAT_APPID"], "mchid": env["WECHATPAY_MCHID"], "description": "压力测试",
                "out_trade_no": no, "notify_url": "http://127.0.0.1:9/load", "amount": {"total": 100},
                "payer": {"openid": "o" + no[:27]}}
        try:
            answer = signed_call(proc, "POST", "/v3/pay/transactions/jsapi", body)
            if answer.status_code == 200:
                acknowledged[no] = answer.json()["prepay_id"]
                if http_json("POST", f"{proc.url}/sandbox/orders/{no}/pay", {}, timeout=5)[0] == 200:
                    paid.add(no)
        except (httpx.HTTPError, OSError):
            pass  # the sandbox was killed under us


def test_bill_controls_and_issued_files_survive_a_kill(processes):
    first = processes(clear=True)
    day = day_ago(5)
    no = paid_order(first, at(day, "10:00:00"))
    foreign = first.control("POST", f"/sandbox/bills/{day}/rows", {"kind": "payment", "amount": 777})["row"]
    issued = signed_call(first, "GET", f"/v3/bill/tradebill?bill_date={day}").json()
    first.control("POST", f"/sandbox/bills/{day}", {"ready": False, "unbalanced": True})
    stop(first, "kill")

    second = processes()
    view = second.control("GET", f"/sandbox/bills/{day}")
    assert view["controls"] == {"ready": False, "corrupt_download": False, "unbalanced": True,
                                "reordered": False}
    assert [r["id"] for r in view["foreign_rows"]] == [foreign["id"]]
    assert {r["商户订单号"] for r in view["rows"]} == {no, foreign["out_trade_no"]}
    download = signed_call(second, "GET", issued["download_url"][len(first.url):])
    assert download.status_code == 200 and hashlib.sha1(download.content).hexdigest() == issued["hash_value"]
    assert signed_call(second, "GET", f"/v3/bill/tradebill?bill_date={day}").json()["code"] == "STATEMENT_CREATING"

    second.control("POST", "/sandbox/reset")
    stop(second, "terminate")
    third = processes()
    view = third.control("GET", f"/sandbox/bills/{day}")
    assert view["controls"]["ready"] and view["foreign_rows"] == [] and [r["商户订单号"] for r in view["rows"]] == [no]
