"""WeChat Pay's platform keys: the public key (PUB_KEY_ID_...) or the platform certificates, and signature checks.

In certificate mode an unknown `Wechatpay-Serial` may mean WeChat Pay issued a new certificate, so the list is
downloaded again — but at most once per REFRESH_MIN_SECONDS, by one coroutine at a time, and the known certificates
stay in place until the new list has been verified (the SDK's own refresh empties its list first, so a forger with
random serials could make every genuine notification fail meanwhile).
"""
from __future__ import annotations

import asyncio
import base64
import logging
import re
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import load_pem_public_key

log = logging.getLogger("gym.wechatpay.keys")

REFRESH_MIN_SECONDS = 60.0
_SERIAL = re.compile(r"^[0-9A-Fa-f]{1,40}$")


class PlatformKeys:
    """Finds the key for a serial; `fetch` is the gateway's download of the certificate list."""

    def __init__(self, settings, fetch=None):
        self.settings = settings
        self.fetch = fetch  # async () -> list[x509.Certificate], verified
        self.public_key = load_pem_public_key(settings.wechatpay_public_key.encode()) \
            if settings.public_key_mode else None
        self.certificates: dict[int, x509.Certificate] = {}
        self._refreshing = None
        self._last_refresh = -REFRESH_MIN_SECONDS
        self.refreshes = 0

    def add(self, certificates):
        """Keep these certificates (valid now) beside the ones already known."""
        for cert in certificates:
            self.certificates[cert.serial_number] = cert

    def known(self, serial: str):
        """The public key for a serial we already have, or None."""
        if self.public_key is not None and serial == self.settings.wechatpay_public_key_id:
            return self.public_key
        if self.settings.public_key_mode or not _SERIAL.match(serial or ""):
            return None
        cert = self.certificates.get(int(serial, 16))
        return cert.public_key() if cert is not None else None

    async def key_for(self, serial: str):
        """The key for a serial; in certificate mode an unknown well-formed serial triggers a bounded refresh."""
        key = self.known(serial)
        if key is not None or self.settings.public_key_mode or not _SERIAL.match(serial or ""):
            return key
        await self.refresh()
        return self.known(serial)

    async def refresh(self):
        """Download the certificate list again, unless it was done less than REFRESH_MIN_SECONDS ago."""
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        if self.fetch is None or time.monotonic() - self._last_refresh < REFRESH_MIN_SECONDS:
            return
        self._last_refresh = time.monotonic()
        self._refreshing = asyncio.get_running_loop().create_task(self._download())
        try:
            await asyncio.shield(self._refreshing)
        finally:
            self._refreshing = None

    async def _download(self):
        try:
            certificates = await self.fetch()
        except Exception as e:  # noqa: BLE001 - keep what we have; the caller treats the serial as unknown
            log.warning("downloading the platform certificates failed: %s", e)
            return
        self.refreshes += 1
        self.add(certificates)
        log.info("platform certificates refreshed: %d known", len(self.certificates))

    def verify(self, key, timestamp: str, nonce: str, body: bytes, signature: str) -> bool:
        """SHA256withRSA over `timestamp\\nnonce\\nbody\\n`."""
        try:
            message = timestamp.encode() + b"\n" + nonce.encode() + b"\n" + body + b"\n"
            key.verify(base64.b64decode(signature, validate=True), message, PKCS1v15(), SHA256())
            return True
        except (InvalidSignature, ValueError, TypeError):
            return False

    def timestamp_ok(self, timestamp: str, now: float | None = None) -> bool:
        """The timestamp is within NOTIFY_TOLERANCE_SECONDS of now (both ways)."""
        try:
            ts = int(timestamp)
        except (TypeError, ValueError):
            return False
        return abs((now or time.time()) - ts) <= self.settings.notify_tolerance_seconds

    async def check_signed(self, headers, body: bytes) -> str | None:
        """Why a signed message (answer or notification) is not genuine, or None when it is."""
        signature = headers.get("Wechatpay-Signature", "")
        timestamp = headers.get("Wechatpay-Timestamp", "")
        nonce = headers.get("Wechatpay-Nonce", "")
        serial = headers.get("Wechatpay-Serial", "")
        if not (signature and timestamp and nonce and serial):
            return "missing signature headers"
        if signature.startswith("WECHATPAY/SIGNTEST/"):
            return "signature probe"
        if headers.get("Wechatpay-Signature-Type", "WECHATPAY2-SHA256-RSA2048") != "WECHATPAY2-SHA256-RSA2048":
            return "unsupported signature type"
        if not self.timestamp_ok(timestamp):
            return "timestamp outside the tolerance"
        key = await self.key_for(serial)
        if key is None:
            return "unknown serial"
        if not self.verify(key, timestamp, nonce, body, signature):
            return "bad signature"
        return None
