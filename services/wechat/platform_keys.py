"""WeChat Pay's platform keys, chosen by `Wechatpay-Serial`, and the signature checks of answers and notifications.

A serial equal to WECHATPAY_PUBLIC_KEY_ID names the platform public key; any hex serial names a platform
certificate, in either mode: WeChat Pay moves a merchant from certificates to the public key over about seven days,
signing with either meanwhile, and during a certificate change it signs with the old and the new one. Every
certificate valid now is kept, chosen by serial.

An unknown hex serial may mean a certificate we have not seen yet, so the list is downloaded again, but bounded:
at most once per REFRESH_MIN_SECONDS (RETRY_FAILED_SECONDS after a download that failed), by one coroutine at a
time, and a serial that a fresh list lacked is remembered (at most MAX_MISSING of them, for MISSING_SECONDS) so
that repeating it costs nothing. Meanwhile such a message is refused (a notification with 401: WeChat Pay
delivers it again). The known certificates stay in place until a new list has been verified (the SDK's own
refresh empties its list first, so a forger with random serials could make every genuine notification fail
meanwhile).
"""
from __future__ import annotations

import asyncio
import base64
import collections
import datetime as dt
import logging
import os
import re
import time

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.padding import PKCS1v15
from cryptography.hazmat.primitives.hashes import SHA256
from cryptography.hazmat.primitives.serialization import Encoding, load_pem_public_key

log = logging.getLogger("gym.wechatpay.keys")

REFRESH_MIN_SECONDS = 60.0
RETRY_FAILED_SECONDS = 5.0  # a download that failed (WeChat Pay unreachable) may be tried again this soon
MAX_MISSING = 1024
MISSING_SECONDS = 600.0
_SERIAL = re.compile(r"^[0-9A-Fa-f]{1,40}$")
_PUBLIC_KEY_ID = re.compile(r"^PUB_KEY_ID_[0-9A-Za-z_]{1,64}$")


def valid_now(cert: x509.Certificate) -> bool:
    """The certificate's validity window contains this moment."""
    now = dt.datetime.now(dt.timezone.utc)
    return cert.not_valid_before_utc <= now <= cert.not_valid_after_utc


class PlatformKeys:
    """Finds the key for a serial; `fetch` is the gateway's verified download of the certificate list."""

    def __init__(self, settings, fetch=None):
        self.settings = settings
        self.fetch = fetch  # async () -> list[x509.Certificate], verified
        self.public_key = load_pem_public_key(settings.wechatpay_public_key.encode()) \
            if settings.public_key_mode else None
        self.certificates: dict[int, x509.Certificate] = {}
        self._missing: collections.OrderedDict[int, float] = collections.OrderedDict()
        self._refreshing = None
        self._last_refresh = -REFRESH_MIN_SECONDS
        self._refreshed_at = None  # when the last download that succeeded started (monotonic)
        self.refreshes = 0

    def add(self, certificates):
        """Keep these certificates (those valid now) beside the ones already known."""
        for cert in certificates:
            if valid_now(cert):
                self.certificates[cert.serial_number] = cert
                self._missing.pop(cert.serial_number, None)

    def load_directory(self):
        """Add the certificates cached in WECHATPAY_CERT_DIR by an earlier download (unreadable files skipped)."""
        folder = self.settings.wechatpay_cert_dir
        try:
            names = [n for n in os.listdir(folder) if n.lower().endswith(".pem")]
        except OSError:
            return
        for name in names:
            try:
                with open(os.path.join(folder, name), "rb") as fh:
                    self.add([x509.load_pem_x509_certificate(fh.read())])
            except (OSError, ValueError):
                log.warning("skipping unreadable platform certificate file %s", name)

    def save_directory(self, certificates):
        """Cache these certificates in WECHATPAY_CERT_DIR (one PEM per serial, written whole or not at all)."""
        os.makedirs(self.settings.wechatpay_cert_dir, exist_ok=True)
        for cert in certificates:
            path = os.path.join(self.settings.wechatpay_cert_dir, f"{cert.serial_number:X}.pem")
            if not os.path.exists(path):
                with open(path + ".tmp", "wb") as fh:
                    fh.write(cert.public_bytes(Encoding.PEM))
                os.replace(path + ".tmp", path)

    def known(self, serial: str):
        """The public key for a serial we already have, or None."""
        if self.public_key is not None and serial == self.settings.wechatpay_public_key_id:
            return self.public_key
        if not _SERIAL.match(serial or ""):
            return None
        cert = self.certificates.get(int(serial, 16))
        return cert.public_key() if cert is not None and valid_now(cert) else None

    async def key_for(self, serial: str):
        """The key for a serial; an unknown well-formed certificate serial triggers a bounded refresh."""
        key = self.known(serial)
        if key is not None or not _SERIAL.match(serial or "") or self._recently_missing(int(serial, 16)):
            return key
        asked = time.monotonic()
        await self.refresh()
        key = self.known(serial)
        if key is None and self._refreshed_at is not None and self._refreshed_at >= asked:
            self._remember_missing(int(serial, 16))  # a list downloaded after we asked lacks it
        return key

    def _recently_missing(self, number: int) -> bool:
        seen = self._missing.get(number)
        if seen is None:
            return False
        if time.monotonic() - seen > MISSING_SECONDS:
            del self._missing[number]
            return False
        return True

    def _remember_missing(self, number: int):
        self._missing[number] = time.monotonic()
        self._missing.move_to_end(number)
        while len(self._missing) > MAX_MISSING:
            self._missing.popitem(last=False)

    async def refresh(self):
        """Download the certificate list again, unless it was done less than REFRESH_MIN_SECONDS ago."""
        if self._refreshing is not None:
            await asyncio.shield(self._refreshing)
            return
        if self.fetch is None or time.monotonic() - self._last_refresh < REFRESH_MIN_SECONDS:
            return
        self._last_refresh = time.monotonic()
        self._refreshing = asyncio.get_running_loop().create_task(self._download(self._last_refresh))
        try:
            await asyncio.shield(self._refreshing)
        finally:
            self._refreshing = None

    async def _download(self, started):
        try:
            certificates = await self.fetch()
        except Exception as e:  # noqa: BLE001 - keep what we have; the caller treats the serial as unknown
            log.warning("downloading the platform certificates failed: %s", e)
            self._last_refresh = started - REFRESH_MIN_SECONDS + RETRY_FAILED_SECONDS
            return
        self.refreshes += 1
        self._refreshed_at = started
        self.add(certificates)
        log.info("platform certificates refreshed: %d known (serials %s)", len(self.certificates),
                 ", ".join(f"{n:X}" for n in self.certificates))

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

    def _unknown(self, serial: str) -> str:
        """Why no key was found for a serial: the operator's hint in the inbox and the log."""
        if _PUBLIC_KEY_ID.match(serial):
            if self.public_key is None:
                return "signed with a platform public key but WECHATPAY_PUBLIC_KEY_ID is not set"
            return "signed with another platform public key than WECHATPAY_PUBLIC_KEY_ID"
        if _SERIAL.match(serial):
            return "unknown platform certificate serial"
        return "unknown serial"

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
            return self._unknown(serial)
        if not self.verify(key, timestamp, nonce, body, signature):
            return "bad signature"
        return None
