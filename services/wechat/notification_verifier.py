"""Verifying and decrypting a WeChat Pay notification: signature (either key mode), timestamp window, AES-GCM."""
from __future__ import annotations

import base64
import json

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class NotificationRejected(Exception):
    """A notification we refuse; `status` is what we answer (401 signature/time, 400 body)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class NotificationVerifier:
    """Checks notifications against the platform public key or the platform certificates (gateway.keys)."""

    def __init__(self, settings, gateway):
        self.settings = settings
        self.keys = gateway.keys
        self.aes = AESGCM(settings.wechatpay_apiv3_key.encode())

    async def verify(self, headers, body: bytes) -> dict:
        """The notification with `resource` decrypted; raises NotificationRejected."""
        problem = await self.keys.check_signed(headers, body)
        if problem:
            raise NotificationRejected(401, problem)
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
