"""Notification delivery: redelivery on the scaled official schedule, and the drop/duplicate/delay rules."""
from __future__ import annotations

import datetime as dt

from tests.harness import http_json, wait_until
from tests.sandbox.wx import jsapi_order, make_client, new_trade_no, with_client

SCALE = 0.01  # the sandbox fixture's --time-scale


def paid_order(sandbox, receiver, path):
    """Place a JSAPI order notifying `path` on the receiver and pay it; returns out_trade_no."""
    no = new_trade_no()
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, receiver.url(path))))
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {})
    return no


def notification_of(sandbox, no):
    """The one notification the sandbox sent for order `no`."""
    [note] = sandbox.control("GET", f"/sandbox/notifications?out_trade_no={no}")["items"]
    return note


def test_redelivered_until_acknowledged_on_the_scaled_schedule(sandbox, receiver):
    path = "/retry"
    receiver.script(path, [500, 500, 204])
    no = paid_order(sandbox, receiver, path)
    deliveries = receiver.wait_for(path, 3)
    wait_until(lambda: notification_of(sandbox, no)["status"] == "delivered", what="delivery to finish")
    note = notification_of(sandbox, no)
    assert [a["status"] for a in note["attempts"]] == [500, 500, 204]
    assert note["attempts"][0]["body"] == '{"code":"FAIL","message":"not yet"}'
    gaps = [b["at"] - a["at"] for a, b in zip(deliveries, deliveries[1:])]
    assert 15 * SCALE * 0.9 <= gaps[0] < 15 * SCALE + 1.0 and 15 * SCALE * 0.9 <= gaps[1] < 15 * SCALE + 1.0
    # Same event, fresh signature each time; each one verifies.
    client = make_client(sandbox, "pubkey")
    events = [client.callback(d["headers"], d["body"]) for d in deliveries]
    assert all(events) and len({e["id"] for e in events}) == 1
    assert len({d["headers"]["Wechatpay-Nonce"] for d in deliveries}) == 3
    # Nothing more comes after the acknowledgement.
    receiver.wait_for("/retry", 3)
    assert len(receiver.received(path)) == 3


def test_unreachable_merchant_is_retried_and_recorded(sandbox):
    no = new_trade_no()
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, "http://127.0.0.1:9/closed-port")))
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {})
    wait_until(lambda: len(notification_of(sandbox, no)["attempts"]) >= 3, what="three failed attempts")
    attempt = notification_of(sandbox, no)["attempts"][0]
    assert attempt["status"] is None and attempt["error"]


def test_drop_rule(sandbox, receiver):
    sandbox.control("POST", "/sandbox/notifications/next", {"action": "drop", "count": 1})
    dropped = paid_order(sandbox, receiver, "/drop")
    kept = paid_order(sandbox, receiver, "/kept")
    receiver.wait_for("/kept")
    note = notification_of(sandbox, dropped)
    assert note["status"] == "dropped" and note["attempts"] == [] and note["rule"]["action"] == "drop"
    assert receiver.received("/drop") == []
    assert notification_of(sandbox, kept)["rule"] is None


def test_duplicate_rule(sandbox, receiver):
    sandbox.control("POST", "/sandbox/notifications/next", {"action": "duplicate", "count": 1, "copies": 3})
    no = paid_order(sandbox, receiver, "/dup")
    copies = receiver.wait_for("/dup", 3)
    wait_until(lambda: notification_of(sandbox, no)["status"] == "delivered", what="delivery to finish")
    assert len(notification_of(sandbox, no)["attempts"]) == 3
    client = make_client(sandbox, "pubkey")
    assert len({client.callback(c["headers"], c["body"])["id"] for c in copies}) == 1


def test_delay_rule_uses_real_seconds(sandbox, receiver):
    sandbox.control("POST", "/sandbox/notifications/next", {"action": "delay", "delay_seconds": 0.5})
    no = paid_order(sandbox, receiver, "/late")
    [late] = receiver.wait_for("/late")
    note = notification_of(sandbox, no)
    assert late["at"] - note["attempts"][0]["at_unix"] < 0.5
    # created_at has whole seconds: the first attempt is at least 0.5 s after it, less up to 1 s of rounding.
    assert note["attempts"][0]["at_unix"] - dt.datetime.fromisoformat(note["created_at"]).timestamp() >= -0.5


def test_notify_key_mode_cert(sandbox, receiver, tmp_path):
    sandbox.control("POST", "/sandbox/config", {"notify_key_mode": "cert"})
    no = paid_order(sandbox, receiver, "/certmode")
    [note] = receiver.wait_for("/certmode")
    assert note["headers"]["Wechatpay-Serial"] == sandbox.control("GET", "/sandbox/info")["platform_cert_serial"]
    event, _ = with_client(sandbox, "cert", tmp_path / "certs")(_callback(note))
    assert event["resource"]["out_trade_no"] == no
    # A public-key-mode client cannot check a certificate-mode signature without the certificate.
    assert make_client(sandbox, "pubkey").callback(note["headers"], note["body"]) is None


def _callback(note):
    async def work(client):
        return client.callback(note["headers"], note["body"])
    return work


def test_no_notification_when_asked_not_to(sandbox, receiver):
    no = new_trade_no()
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, receiver.url("/quiet"))))
    assert sandbox.control("POST", f"/sandbox/orders/{no}/pay", {"notify": False})["notification_id"] is None
    assert sandbox.control("GET", f"/sandbox/notifications?out_trade_no={no}")["items"] == []


def test_signature_probe(sandbox, receiver):
    no = new_trade_no()
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, receiver.url("/probe"))))
    receiver.script("/probe", [401])
    probe_id = sandbox.control("POST", f"/sandbox/orders/{no}/probe")["notification_id"]
    [probe] = receiver.wait_for("/probe")
    assert probe["headers"]["Wechatpay-Signature"].startswith("WECHATPAY/SIGNTEST/")
    assert make_client(sandbox, "pubkey").callback(probe["headers"], probe["body"]) is None
    wait_until(lambda: notification_of(sandbox, no)["status"] == "probed", what="the probe to be answered")
    note = notification_of(sandbox, no)
    assert note["id"] == probe_id and note["probe"] and [a["status"] for a in note["attempts"]] == [401]


def test_redeliver_sends_the_same_event_signed_afresh(sandbox, receiver):
    no = paid_order(sandbox, receiver, "/again")
    [first] = receiver.wait_for("/again")
    wait_until(lambda: notification_of(sandbox, no)["status"] == "delivered", what="the first delivery")
    note_id = notification_of(sandbox, no)["id"]
    answer = sandbox.control("POST", f"/sandbox/notifications/{note_id}/redeliver")
    assert answer["attempt"]["status"] == 204 and answer["attempt"]["redelivery"] is True
    assert answer["attempt"]["number"] == 2 and answer["notification"]["status"] == "delivered"
    _, second = receiver.wait_for("/again", 2)
    assert second["body"] == first["body"], "the same event, byte for byte"
    assert second["headers"]["Wechatpay-Nonce"] != first["headers"]["Wechatpay-Nonce"]
    assert second["headers"]["Wechatpay-Signature"] != first["headers"]["Wechatpay-Signature"]
    assert int(second["headers"]["Wechatpay-Timestamp"]) >= int(first["headers"]["Wechatpay-Timestamp"])
    assert make_client(sandbox, "pubkey").callback(second["headers"], second["body"])["id"] == note_id
    assert sandbox.control("GET", f"/sandbox/notifications/{note_id}") == notification_of(sandbox, no)


def test_redeliver_a_dropped_or_pending_notification(sandbox, receiver):
    sandbox.control("POST", "/sandbox/notifications/next", {"action": "drop"})
    dropped = notification_of(sandbox, paid_order(sandbox, receiver, "/dropped-then-sent"))
    assert dropped["status"] == "dropped"
    answer = sandbox.control("POST", f"/sandbox/notifications/{dropped['id']}/redeliver")
    assert answer["notification"]["status"] == "delivered" and len(answer["notification"]["attempts"]) == 1
    receiver.script("/refused", [500] * 100)
    no = paid_order(sandbox, receiver, "/refused")
    receiver.wait_for("/refused", 2)
    refused = sandbox.control("POST", f"/sandbox/notifications/{notification_of(sandbox, no)['id']}/redeliver")
    assert refused["attempt"]["status"] == 500 and refused["notification"]["status"] == "pending", "schedule goes on"
    receiver.script("/refused", [])
    accepted = sandbox.control("POST", f"/sandbox/notifications/{notification_of(sandbox, no)['id']}/redeliver")
    assert accepted["notification"]["status"] == "delivered"
    assert accepted["notification"]["next_attempt_in_seconds"] is None, "no more scheduled attempts"


def test_redeliver_an_unknown_notification(sandbox):
    status, body, _ = http_json("POST", f"{sandbox.url}/sandbox/notifications/EV-NOPE/redeliver")
    assert status == 404 and body["code"] == "NOTIFICATION_NOT_EXIST"
