"""Building WeChat Pay notifications in tests with the sandbox's own platform keys (or wrong ones)."""
from __future__ import annotations

import base64
import datetime as dt
import json
import os
import secrets
import time

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM


def _load_key(path):
    with open(path, "rb") as fh:
        return serialization.load_pem_private_key(fh.read(), password=None)


class Forger:
    """Makes signed, encrypted notifications as the sandbox (i.e. WeChat Pay) would."""

    def __init__(self, state_dir, env):
        self.env = env
        self.pubkey_key = _load_key(os.path.join(state_dir, "platform_pubkey_private_key.pem"))
        self.public_key_id = env["WECHATPAY_PUBLIC_KEY_ID"]
        with open(env["WECHATPAY_APIV3_KEY_FILE"], encoding="utf-8") as fh:
            self.apiv3_key = fh.read().strip().encode()

    def transaction(self, out_trade_no, total=20000, openid="o-test", **over):
        """A SUCCESS transaction resource for the order."""
        txn = {
            "appid": self.env["WECHAT_APPID"], "mchid": self.env["WECHATPAY_MCHID"], "out_trade_no": out_trade_no,
            "transaction_id": "42000" + "".join(secrets.choice("0123456789") for _ in range(23)),
            "trade_type": "JSAPI", "trade_state": "SUCCESS", "trade_state_desc": "支付成功", "bank_type": "OTHERS",
            "success_time": dt.datetime.now(dt.timezone(dt.timedelta(hours=8))).isoformat(timespec="seconds"),
            "payer": {"openid": openid},
            "amount": {"total": total, "payer_total": total, "currency": "CNY", "payer_currency": "CNY"},
        }
        txn.update(over)
        return txn

    def body(self, resource: dict, event_type="TRANSACTION.SUCCESS") -> bytes:
        """The notification body with the resource encrypted under the APIv3 key."""
        nonce = secrets.token_hex(6)
        cipher = AESGCM(self.apiv3_key).encrypt(nonce.encode(), json.dumps(resource).encode(), b"transaction")
        envelope = {
            "id": "EV-" + secrets.token_hex(8), "create_time": "2026-11-22T10:00:00+08:00",
            "resource_type": "encrypt-resource", "event_type": event_type, "summary": "支付成功",
            "resource": {"original_type": "transaction", "algorithm": "AEAD_AES_256_GCM",
                         "ciphertext": base64.b64encode(cipher).decode(), "associated_data": "transaction",
                         "nonce": nonce},
        }
        return json.dumps(envelope).encode()

    def headers(self, body: bytes, timestamp=None, key=None, serial=None) -> dict:
        """Signed notification headers (the sandbox's public-key-mode key unless another is given)."""
        ts = str(int(timestamp if timestamp is not None else time.time()))
        nonce = secrets.token_hex(16)
        message = f"{ts}\n{nonce}\n".encode() + body + b"\n"
        signature = (key or self.pubkey_key).sign(message, padding.PKCS1v15(), hashes.SHA256())
        return {"Wechatpay-Timestamp": ts, "Wechatpay-Nonce": nonce,
                "Wechatpay-Signature": base64.b64encode(signature).decode(),
                "Wechatpay-Serial": serial or self.public_key_id,
                "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048", "Content-Type": "application/json"}

    @staticmethod
    def stranger_key():
        """A key WeChat Pay never had."""
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
