"""The sandbox held against an independent npm client, wechatpay-axios-plugin (tests/node/sandbox_check.js)."""
from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.harness import ROOT
from tests.sandbox.wx import jsapi_order, new_trade_no, with_client

NODE_DIR = os.path.join(ROOT, "tests", "node")


@pytest.fixture(scope="module")
def node_client():
    """Runs sandbox_check.js; installs the locked npm packages first when they are not there yet."""
    if not os.path.isdir(os.path.join(NODE_DIR, "node_modules", "wechatpay-axios-plugin")):
        subprocess.run(["npm", "ci", "--silent", "--no-audit", "--no-fund"], cwd=NODE_DIR, check=True, timeout=600)

    def run(*args):
        done = subprocess.run(["node", "sandbox_check.js", *args], cwd=NODE_DIR, capture_output=True, text=True,
                              timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)
    return run


def test_signed_requests_verified_by_the_npm_client(sandbox, node_client):
    result = node_client("request", os.path.join(sandbox.state_dir, "service.env"))
    info = sandbox.control("GET", "/sandbox/info")
    assert result["ok"] and result["code_url"].startswith("weixin://wxpay/bizpayurl?pr=")
    assert result["trade_state"] == "NOTPAY" and result["close_status"] == 204
    assert result["serials"] == [info["public_key_id"], info["platform_cert_serial"]]
    assert result["swapped_keys_refused"] == "EV3_RES_HEADER_SIGNATURE_DIGEST"
    order = sandbox.control("GET", f"/sandbox/orders/{result['out_trade_no']}")
    assert order["description"] == "体验课（node 客户端）" and order["trade_state"] == "CLOSED"


@pytest.mark.parametrize("key_mode", ["pubkey", "cert"])
def test_notification_verified_and_decrypted_by_the_npm_client(sandbox, receiver, node_client, tmp_path, key_mode):
    sandbox.control("POST", "/sandbox/config", {"notify_key_mode": key_mode})
    no, path = new_trade_no(), f"/node/{key_mode}"
    with_client(sandbox, "pubkey")(lambda c: c.pay(**jsapi_order(sandbox, no, receiver.url(path))))
    sandbox.control("POST", f"/sandbox/orders/{no}/pay", {})
    [note] = receiver.wait_for(path)
    saved = tmp_path / "notification.json"
    saved.write_text(json.dumps({"headers": note["headers"], "body": note["body"]}), encoding="utf-8")
    result = node_client("notify", os.path.join(sandbox.state_dir, "service.env"), str(saved))
    assert result["event_type"] == "TRANSACTION.SUCCESS"
    assert result["resource"]["out_trade_no"] == no and result["resource"]["trade_state"] == "SUCCESS"

    tampered = json.loads(saved.read_text(encoding="utf-8"))
    tampered["body"] = tampered["body"].replace("支付成功", "支付失败")
    saved.write_text(json.dumps(tampered), encoding="utf-8")
    done = subprocess.run(["node", "sandbox_check.js", "notify", os.path.join(sandbox.state_dir, "service.env"),
                           str(saved)], cwd=NODE_DIR, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "signature does not verify" in done.stderr


def test_every_certificate_serial_reads_the_same_as_hex_and_as_der_bytes():
    """The sandbox's certificates carry 40-hex-digit serials, as WeChat Pay's do: `Wechatpay-Serial` (the number in
    hex) then equals what a client reads off the certificate's DER bytes (Node's X509Certificate.serialNumber).
    Control: with cryptography's random_serial_number about one certificate in 16 differed (a leading 0)."""
    from cryptography.hazmat.primitives.asymmetric import rsa

    from sandbox.credentials import PLATFORM_NAME, self_signed

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    for _ in range(64):
        n = self_signed(key, *PLATFORM_NAME).serial_number
        der_hex = n.to_bytes((n.bit_length() + 8) // 8, "big").lstrip(b"\0").hex().upper()
        as_node = der_hex if len(der_hex) % 2 == 0 else "0" + der_hex
        assert format(n, "X") == as_node and len(as_node) == 40
