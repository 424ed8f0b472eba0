"""The APIv3 key, and the one before the last change: they open the AES-256-GCM resources of notifications and of
the `/v3/certificates` list.

WeChat Pay encrypts a notification once, when it creates it, and redelivers those same bytes for 24 h 4 min: after
an APIv3 key change the notifications created before it still need the old key, hence WECHATPAY_APIV3_KEY_PREVIOUS.
"""
from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from telemetry import metrics

CURRENT, PREVIOUS = "current", "previous"


class MalformedResource(ValueError):
    """The resource is not AES-256-GCM as WeChat Pay writes it (bad base64, nonce or fields)."""


class UndecryptableResource(Exception):
    """No APIv3 key we have opens the resource; `reason` says which keys were tried."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class ApiV3Keys:
    """The current APIv3 key and, when configured, the previous one (tried second)."""

    def __init__(self, current: str, previous: str | None = None):
        self._keys = [(CURRENT, AESGCM(current.encode()))]
        if previous:
            self._keys.append((PREVIOUS, AESGCM(previous.encode())))
        self.refusal = ("resource does not decrypt with the current or the previous APIv3 key" if previous
                        else "resource does not decrypt with the APIv3 key")

    @classmethod
    def of(cls, settings) -> "ApiV3Keys":
        """The keys the settings name."""
        return cls(settings.wechatpay_apiv3_key, settings.wechatpay_apiv3_key_previous)

    def decrypt(self, resource, what: str) -> tuple[bytes, str]:
        """(plaintext, CURRENT or PREVIOUS) of a `{nonce, ciphertext, associated_data}` resource; counted under `what`.

        Raises MalformedResource or UndecryptableResource.
        """
        if not isinstance(resource, dict):
            raise MalformedResource("resource is not an object")
        nonce, ciphertext = resource.get("nonce"), resource.get("ciphertext")
        aad = resource.get("associated_data") or ""
        if not (isinstance(nonce, str) and isinstance(ciphertext, str) and isinstance(aad, str)):
            raise MalformedResource("nonce, ciphertext or associated_data missing")
        try:
            sealed = base64.b64decode(ciphertext, validate=True)
            nonce_bytes, aad_bytes = nonce.encode(), aad.encode() or None
        except (binascii.Error, ValueError, UnicodeError) as e:
            raise MalformedResource("bad base64 or text") from e
        for name, aes in self._keys:
            try:
                plain = aes.decrypt(nonce_bytes, sealed, aad_bytes)
            except InvalidTag:
                continue
            except ValueError as e:  # a nonce of a length AES-GCM refuses
                raise MalformedResource("bad nonce") from e
            metrics.APIV3_DECRYPTS.labels(what, name).inc()
            return plain, name
        metrics.APIV3_DECRYPTS.labels(what, "none").inc()
        raise UndecryptableResource(self.refusal)
