"""Verifying and decrypting a WeChat Pay notification: signature (the key its Wechatpay-Serial names), timestamp
window, AES-GCM with the APIv3 key or the previous one."""
from __future__ import annotations

import json
import logging

from .apiv3 import CURRENT, PREVIOUS, MalformedResource, UndecryptableResource

log = logging.getLogger("gym.wechatpay.notify")

PREVIOUS_KEY_REASON = "decrypted with WECHATPAY_APIV3_KEY_PREVIOUS"


class NotificationRejected(Exception):
    """A notification we refuse; `status` is what we answer (401 signature/time, 400 body)."""

    def __init__(self, status: int, reason: str):
        super().__init__(reason)
        self.status = status
        self.reason = reason


class Envelope(dict):
    """A verified notification with its resource decrypted; `apiv3_key` names the key that opened it."""

    apiv3_key = CURRENT

    @property
    def key_note(self) -> str | None:
        """What the inbox records about the key (never the key): set only when the previous one was needed."""
        return PREVIOUS_KEY_REASON if self.apiv3_key == PREVIOUS else None


class NotificationVerifier:
    """Checks notifications with the gateway's platform keys and opens them with its APIv3 keys."""

    def __init__(self, settings, gateway):
        self.settings = settings
        self.keys = gateway.keys
        self.apiv3 = gateway.apiv3

    async def verify(self, headers, body: bytes) -> Envelope:
        """The notification with `resource` decrypted; raises NotificationRejected."""
        problem = await self.keys.check_signed(headers, body)
        if problem:
            raise NotificationRejected(401, problem)
        return self.decrypt(body)

    def decrypt(self, body: bytes) -> Envelope:
        """Parse the envelope and decrypt its resource; raises NotificationRejected(400)."""
        try:
            envelope = Envelope(json.loads(body))
            resource = envelope["resource"]
            if resource.get("algorithm") != "AEAD_AES_256_GCM":
                raise MalformedResource("algorithm")
            plain, envelope.apiv3_key = self.apiv3.decrypt(resource, "notification")
            envelope["resource"] = json.loads(plain)
        except UndecryptableResource as e:
            raise NotificationRejected(400, e.reason) from None
        except Exception:  # noqa: BLE001 - any malformed body is the same refusal
            raise NotificationRejected(400, "malformed body") from None
        if not isinstance(envelope["resource"], dict) or not isinstance(envelope.get("event_type"), str):
            raise NotificationRejected(400, "malformed resource")
        if envelope.apiv3_key == PREVIOUS:
            log.info("notification %s (%s) %s: WeChat Pay encrypted it before the APIv3 key change",
                     str(envelope.get("id"))[:64], envelope["event_type"][:32], PREVIOUS_KEY_REASON)
        return envelope
