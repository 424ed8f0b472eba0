"""Key changes while the sandbox runs (/sandbox/keys), held against wechatpayv3: new generations beside the old
files, kept across a restart; queued notifications keep their old-key bytes; signing in either mode in turn; merchant
certificates accepted until revoked."""
from __future__ import annotations

import json
import os
import shutil
import stat

import pytest

from tests.harness import VAR, SandboxProcess, http_json, read_env_file, wait_until
from tests.sandbox.wx import jsapi_order, make_client, new_trade_no, read, signed_call, with_client


@pytest.fixture
def changing(request):
    """A sandbox of this test's own: its keys change, the session's sandbox must keep its own."""
    state_dir = os.path.join(VAR, "test", f"sandbox-keys-{os.getpid()}-{request.node.name[:40]}")
    shutil.rmtree(state_dir, ignore_errors=True)
    proc = SandboxProcess(state_dir, time_scale=0.01)
    yield proc
    if proc.proc.poll() is None:
        proc.stop()
    shutil.rmtree(state_dir, ignore_errors=True)


def current_env(sandbox):
    """The settings as the sandbox gives them now (service.env after the last change)."""
    sandbox.env = {**read_env_file(os.path.join(sandbox.state_dir, "service.env")),
                   "WECHAT_API_BASE": sandbox.url, "WECHATPAY_GATEWAY": sandbox.url}
    return sandbox.env


def test_each_change_adds_a_generation_kept_across_a_restart(changing):
    before = dict(changing.env)
    for kind in ("apiv3-key", "public-key", "platform-certificate", "merchant-certificate"):
        keys = changing.control("POST", f"/sandbox/keys/{kind}", {})
    env = current_env(changing)
    assert env["WECHATPAY_APIV3_KEY_PREVIOUS_FILE"] == before["WECHATPAY_APIV3_KEY_FILE"]
    for name in ("WECHATPAY_APIV3_KEY_FILE", "WECHATPAY_PUBLIC_KEY_FILE", "WECHATPAY_PUBLIC_KEY_ID",
                 "WECHATPAY_CERT_SERIAL_NO", "WECHATPAY_PRIVATE_KEY_FILE"):
        assert env[name] != before[name], name
    for name in ("WECHATPAY_APIV3_KEY_FILE", "WECHATPAY_PUBLIC_KEY_FILE", "WECHATPAY_PRIVATE_KEY_FILE"):
        assert read(before[name]) != read(env[name])  # the old file is still there, unchanged
        assert stat.S_IMODE(os.stat(env[name]).st_mode) == 0o600
    assert [k["current"] for k in keys["platform_certificates"]] == [False, True]
    assert keys["public_keys"][-1]["id"] == env["WECHATPAY_PUBLIC_KEY_ID"]
    text = json.dumps(keys)
    assert read(env["WECHATPAY_APIV3_KEY_FILE"]) not in text and "PRIVATE KEY" not in text

    changing.stop()
    again = SandboxProcess(changing.state_dir, time_scale=0.01, port=changing.port)
    try:
        assert again.control("GET", "/sandbox/keys") == keys
        assert again.env["WECHATPAY_PUBLIC_KEY_ID"] == env["WECHATPAY_PUBLIC_KEY_ID"]
    finally:
        again.stop()


def test_the_certificate_list_holds_every_certificate_and_the_newest_signs(changing, tmp_path):
    changing.control("POST", "/sandbox/keys/platform-certificate", {})
    serials = [c["serial_no"] for c in changing.control("GET", "/sandbox/keys")["platform_certificates"]]
    (status, _), client = with_client(changing, "cert", tmp_path / "certs")(
        lambda c: c.query(out_trade_no=new_trade_no()))
    assert status == 404  # a signed refusal: the client verified it with the new certificate
    assert sorted(format(c.serial_number, "X") for c in client._core._certificates) == sorted(serials)
    answers = changing.control("GET", "/sandbox/requests?path_prefix=/v3/certificates")["items"]
    assert answers[-1]["status"] == 200 and answers[-1]["signed_with"] == "cert"


def test_answers_and_notifications_in_either_mode_take_turns(changing, receiver, tmp_path):
    changing.control("POST", "/sandbox/config", {"notify_key_mode": "either", "answer_key_mode": "either"})
    for _ in range(4):  # a public-key-mode client verifies the certificate-signed ones after downloading the list
        no = new_trade_no()
        with_client(changing, "pubkey")(lambda c: c.pay(**jsapi_order(changing, no, receiver.url("/either"))))
    answers = changing.control("GET", "/sandbox/requests?path_prefix=/v3/pay/transactions/jsapi")["items"]
    assert {a["signed_with"] for a in answers} == {"pubkey", "cert"}
    receiver.script("/either", [500])
    changing.control("POST", f"/sandbox/orders/{no}/pay", {})
    wait_until(lambda: len(receiver.received("/either")) >= 2, what="two deliveries")
    serials = [r["headers"]["Wechatpay-Serial"] for r in receiver.received("/either")[:2]]
    info = changing.control("GET", "/sandbox/info")
    assert sorted(serials) == sorted([info["public_key_id"], info["platform_cert_serial"]])


def test_a_notification_made_before_an_apiv3_key_change_keeps_the_old_key(changing, receiver):
    old_env = dict(changing.env)
    changing.control("POST", "/sandbox/notifications/next", {"action": "delay", "delay_seconds": 1})
    no = new_trade_no()
    with_client(changing, "pubkey")(lambda c: c.pay(**jsapi_order(changing, no, receiver.url("/old-key"))))
    changing.control("POST", f"/sandbox/orders/{no}/pay", {})
    changing.control("POST", "/sandbox/keys/apiv3-key", {})
    [old] = receiver.wait_for("/old-key")
    assert make_client(changing, "pubkey").callback(old["headers"], old["body"])["resource"]["out_trade_no"] == no
    current_env(changing)
    assert make_client(changing, "pubkey").callback(old["headers"], old["body"]) is None
    [note] = changing.control("GET", f"/sandbox/notifications?out_trade_no={no}")["items"]
    assert note["apiv3_key_generation"] == 1
    # One made after the change opens with the new key only; so does the certificate list.
    later = new_trade_no()
    with_client(changing, "pubkey")(lambda c: c.pay(**jsapi_order(changing, later, receiver.url("/new-key"))))
    changing.control("POST", f"/sandbox/orders/{later}/pay", {})
    [new] = receiver.wait_for("/new-key")
    assert make_client(changing, "pubkey").callback(new["headers"], new["body"])["resource"]["out_trade_no"] == later
    changing.env = old_env
    assert make_client(changing, "pubkey").callback(new["headers"], new["body"]) is None


def test_a_new_public_key_signs_notifications_and_an_old_id_still_gets_its_answers(changing, receiver):
    old_env = dict(changing.env)
    changing.control("POST", "/sandbox/keys/public-key", {})
    no = new_trade_no()
    (status, _), _ = with_client(changing, "pubkey")(  # still configured with the old key: answers verify
        lambda c: c.pay(**jsapi_order(changing, no, receiver.url("/new-public-key"))))
    assert status == 200
    changing.control("POST", f"/sandbox/orders/{no}/pay", {})
    [note] = receiver.wait_for("/new-public-key")
    assert note["headers"]["Wechatpay-Serial"] != old_env["WECHATPAY_PUBLIC_KEY_ID"]
    assert make_client(changing, "pubkey").callback(note["headers"], note["body"]) is None
    current_env(changing)
    assert note["headers"]["Wechatpay-Serial"] == changing.env["WECHATPAY_PUBLIC_KEY_ID"]
    assert make_client(changing, "pubkey").callback(note["headers"], note["body"])["resource"]["out_trade_no"] == no


def test_merchant_certificates_are_accepted_until_revoked(changing):
    old_env = dict(changing.env)
    path = f"/v3/pay/transactions/out-trade-no/{new_trade_no()}?mchid={old_env['WECHATPAY_MCHID']}"
    changing.control("POST", "/sandbox/keys/merchant-certificate", {})
    new_env = current_env(changing)
    assert signed_call(changing, "GET", path).status_code == 404  # the new certificate: authenticated
    changing.env = old_env
    assert signed_call(changing, "GET", path).status_code == 404  # the old one too, until revoked
    changing.control("POST", f"/sandbox/keys/merchant-certificate/{old_env['WECHATPAY_CERT_SERIAL_NO']}/revoke")
    refused = signed_call(changing, "GET", path)
    assert refused.status_code == 401 and refused.json()["code"] == "SIGN_ERROR"
    status, body, _ = http_json("POST", changing.url + f"/sandbox/keys/merchant-certificate/"
                                f"{new_env['WECHATPAY_CERT_SERIAL_NO']}/revoke")
    assert status == 409 and body["code"] == "LAST_CERTIFICATE"


def test_an_apiv3_key_is_32_letters_or_digits_never_one_used_before(changing):
    used = read(changing.env["WECHATPAY_APIV3_KEY_FILE"]).strip()
    for key, status in (("short", 400), ("x" * 31 + "!", 400), (used, 409), (12, 400)):
        answer, body, _ = http_json("POST", changing.url + "/sandbox/keys/apiv3-key", {"apiv3_key": key})
        assert answer == status, (key, body)
    chosen = "A" * 16 + "1" * 16
    changing.control("POST", "/sandbox/keys/apiv3-key", {"apiv3_key": chosen})
    assert read(current_env(changing)["WECHATPAY_APIV3_KEY_FILE"]) == chosen
    page = http_json("GET", changing.url + "/sandbox/")[1].decode()
    assert "/sandbox/keys/apiv3-key" in page and chosen not in page
