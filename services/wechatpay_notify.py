"""Verifying and decrypting a WeChat Pay notification: signature (either key mode), timestamp window, AES-GCM."""
from __future__ import annotations

import base64
import json
import time

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key


class NotificationRejected(Exception):
    """A notification we refuse; `status` is what we answer (401 signature/time, 400 body)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class NotificationVerifier:
    """Checks notifications against the platform public key or the downloaded platform certificates."""

    def __init__(self, settings, gateway):
        self.settings = settings
        self.gateway = gateway
        self.public_key = load_pem_public_key(settings.wechatpay_public_key.encode()) \
            if settings.public_key_mode else None
        self.aes = AESGCM(settings.wechatpay_apiv3_key.encode())

    def _certificate_key(self, serial):
        try:
            wanted = int(serial, 16)
        except ValueError:
            return None
        for cert in self.gateway.core._certificates:
            if cert.serial_number == wanted:
                return cert.public_key()
        return None

    async def _key_for(self, serial):
        if self.public_key is not None and serial == self.settings.wechatpay_public_key_id:
            return self.public_key
        if self.settings.public_key_mode:
            return None
        key = self._certificate_key(serial)
        if key is None:  # a new platform certificate may have been issued: fetch the list once
            try:
                await self.gateway.refresh_certificates()
            except Exception:  # noqa: BLE001 - an unreachable gateway means we cannot verify now
                raise NotificationRejected(503, "platform certificates unavailable") from None
            key = self._certificate_key(serial)
        return key

    async def verify(self, headers, body: bytes, now: float | None = None) -> dict:
        """The notification with `resource` decrypted; raises NotificationRejected."""
        signature = headers.get("Wechatpay-Signature", "")
        timestamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        serial = headers.get("Wechatpay-Serial", "")
        if not (signature and timestamp and nonce and serial):
            raise NotificationRejected(401, "missing signature headers")
        if signature.startswith("WECHATPAY/SIGNTEST/"):
            raise NotificationRejected(401, "signature probe")
        if headers.get("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048") != "WECHATPAY2-SHA256-RSA2048":
            raise NotificationRejected(401, "unsupported signature type")
        try:
            ts = int(timestamp)
        except ValueError:
            raise NotificationRejected(401, "malformed timestamp") from None
        if abs((now or time.time()) - ts) > self.settings.notify_tolerance_seconds:
            raise NotificationRejected(401, "timestamp outside the tolerance")
        key = await self._key_for(serial)
        if key is None:
            raise NotificationRejected(401, f"unknown serial {serial[:40]}")
        try:
            message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
            key.verify(base64.b64decode(signature, validate=True), message, PKCS1v15(), SHA256())
        except (InvalidSignature, ValueError):
            raise NotificationRejected(401, "bad signature") from None
        return self.decrypt(body)

    def decrypt(self, body: bytes) -> dict:
        """Parse the envelope and decrypt its resource; raises NotificationRejected(400)."""
        try:
            envelope = json.loads(body)
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise ValueError("algorithm")
            aad = resource.get("associated_data") or ""
            plain = self.aes.decrypt(resource["nonce"].encode(), base64.b64decode(resource["ciphertext"]),
                                     aad.encode() if aad else None)
            envelope["resource"] = json.loads(plain)
        except Exception:  # noqa: BLE001 - any malformed or undecryptable body is the same refusal
            raise NotificationRejected(400, "malformed or undecryptable body") from None
        if not isinstance(envelope["resource"], dict) or not isinstance(envelope.get("event_type"), str):
            raise NotificationRejected(400, "malformed resource")
        return envelope
