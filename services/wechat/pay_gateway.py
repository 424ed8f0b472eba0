"""The WeChat Pay gateway: one AsyncWeChatPay client built at start, its answers mapped to PaymentGatewayError.

The SDK only knows one platform key mode at a time and refreshes certificates unbounded and unverified, so on our
client its two key-handling steps are ours: its certificate bootstrap does nothing (we load WECHATPAY_CERT_DIR and
download the list ourselves, verified, with either APIv3 key) and its answer check asks PlatformKeys, which picks
the public key or a certificate by `Wechatpay-Serial` in either mode.
"""
from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from urllib.parse import urlsplit

from cryptography import x509
from wechatpayv3.async_ import AsyncWeChatPay
from wechatpayv3.async_.type import WeChatPayType
from wechatpayv3.utils import build_authorization

from telemetry import metrics

from .apiv3 import PREVIOUS, MalformedResource, UndecryptableResource, ApiV3Keys
from .platform_keys import PlatformKeys, valid_now
from .transport import MAX_ANSWER_BYTES, TooLarge, TransportError, WeChatHTTP

log = logging.getLogger("gym.wechatpay")

RETRYABLE_CODES = {"SYSTEM_ERROR", "BANK_ERROR", "FREQUENCY_LIMITED", "UNAVAILABLE", "SIGN_VERIFY_FAILED"}


CERTIFICATES_PATH = "/v3/certificates"
BILL_DOWNLOAD_PATH = "/v3/billdownload/file"  # WeChat Pay does not sign this answer (the signed hash stands for it)
BILL_MAX_BYTES = MAX_ANSWER_BYTES  # a larger download is refused (a gym's day is a few kilobytes)
CONNECT_TIMEOUT, CALL_TIMEOUT = 3, 10  # seconds (services/wechat/transport.py): a WeChat Pay call takes at most 10 s


class UnverifiedAnswer(Exception):
    """An answer from the gateway whose signature is missing or wrong: nothing may be decided on it."""


class PaymentGatewayError(Exception):
    """WeChat Pay refused or could not be reached; `retryable` says whether the same call may succeed later."""

    def __init__(self, code: str, message: str, http_status: int | None = None, retryable: bool = False):
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
        self.http_status = http_status
        self.retryable = retryable


def _url_parts(url: str):
    """(scheme, host, port, path, query) of an absolute http(s) URL (the default port filled in), or None."""
    try:
        parts = urlsplit(url)
        port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return parts.scheme, parts.hostname.lower(), port, parts.path, parts.query


def _rfc3339_cn(when) -> str:
    """A naive-UTC datetime as RFC 3339 in Beijing time, as WeChat Pay writes times."""
    cn = when.replace(tzinfo=dt.timezone.utc).astimezone(dt.timezone(dt.timedelta(hours=8)))
    return cn.replace(microsecond=0).isoformat()


def _error_code(body: bytes) -> str | None:
    """WeChat Pay's error code in an error answer, if it has one."""
    try:
        code = json.loads(body).get("code")
    except (ValueError, AttributeError):
        return None
    return code[:32] if isinstance(code, str) else None


class WeChatPayGateway:
    """Calls WeChat Pay API v3 for this merchant; the gateway URL comes from settings."""

    def __init__(self, settings):
        self.settings = settings
        self.client = AsyncWeChatPay(
            wechatpay_type=WeChatPayType.MINIPROG,
            mchid=settings.wechatpay_mchid,
            private_key=settings.wechatpay_private_key,
            cert_serial_no=settings.wechatpay_cert_serial_no,
            appid=settings.wechat_appid,
            apiv3_key=settings.wechatpay_apiv3_key,
            notify_url=settings.wechatpay_notify_url,
            public_key=settings.wechatpay_public_key,
            public_key_id=settings.wechatpay_public_key_id,
            timeout=(CONNECT_TIMEOUT, CALL_TIMEOUT - CONNECT_TIMEOUT),
        )
        self.client._core._gate_way = settings.wechatpay_gateway
        self.client._core._init_certificates = self._no_sdk_certificates
        self.client._core._verify_signature_async = self._sdk_answer_check
        self.apiv3 = ApiV3Keys.of(settings)
        self.keys = PlatformKeys(settings, fetch=self.fetch_certificates)
        self._opened = False

    @property
    def core(self):
        """The SDK's core (HTTP client, merchant key)."""
        return self.client._core

    async def open(self):
        """Open the HTTP client and load the cached platform certificates; in certificate mode with none cached,
        download them (when that fails, the first answer or notification with a certificate serial tries again,
        bounded as PlatformKeys bounds every download)."""
        if self._opened:
            return
        # The SDK's own __aenter__ would build an httpx client and bootstrap certificates; we give its core our
        # long-lived client instead (services/wechat/transport.py): built once here, shared by every call until
        # close(), every answer checked by _check_answer before the SDK or we read it.
        self.core._client = WeChatHTTP(check_answer=self._check_answer)
        self._opened = True
        self.keys.load_directory()
        if not self.settings.public_key_mode and not self.keys.certificates:
            try:
                self.keys.add(await self._download_certificates())
            except (PaymentGatewayError, TransportError, OSError) as e:
                log.warning("downloading the platform certificates at start failed: %s", e)

    async def close(self):
        """Close the HTTP client."""
        if self._opened:
            await self.core._client.aclose()
            self._opened = False

    async def _no_sdk_certificates(self):
        """Stands in for the SDK's certificate bootstrap (open() loads and downloads them itself)."""

    async def _sdk_answer_check(self, headers, body) -> bool:
        """Stands in for the SDK's check of a 2xx answer: the same PlatformKeys as every other check (already done,
        on these very headers and bytes, when _check_answer passed them: then not a second time)."""
        if getattr(headers, "verified", False):
            return True
        return await self.keys.check_signed(headers, body.encode() if isinstance(body, str) else body) is None

    async def _check_answer(self, answer):
        """Every answer we may act on must be signed by WeChat Pay (the SDK checks only 2xx answers); a checked
        answer's headers are marked so that the SDK's own check (_sdk_answer_check) does not verify it again.
        (An answer longer than MAX_ANSWER_BYTES never gets here: the transport refuses it unread.)"""
        if self._exempt(answer.path, answer.status_code):
            return
        await self._verify_answer(answer.status_code, answer.headers, answer.content)
        answer.headers.verified = True

    @staticmethod
    def _exempt(path, status) -> bool:
        """The list is checked by _download_certificates, a bill file by its signed SHA1 (services/bills); 5xx and
        429 only ever mean "try again"."""
        return path in (CERTIFICATES_PATH, BILL_DOWNLOAD_PATH) or status >= 500 or status == 429

    async def _verify_answer(self, status, headers, body: bytes):
        problem = await self.keys.check_signed(headers, body)
        if problem:
            raise UnverifiedAnswer(f"HTTP {status} answer not verified: {problem}")

    async def fetch_certificates(self) -> list:
        """Download, decrypt and verify the platform certificate list, and cache it (PlatformKeys' refresh)."""
        await self.open()
        return await self._download_certificates()

    async def _download_certificates(self) -> list:
        """The verified list, timed and counted as the `certificates` call."""
        started = time.monotonic()
        outcome = "error"
        try:
            found = await self._certificate_list()
            outcome = "ok"
            return found
        finally:
            metrics.WECHATPAY_DURATION.labels("certificates").observe(time.monotonic() - started)
            metrics.WECHATPAY_CALLS.labels("certificates", outcome).inc()

    async def _certificate_list(self) -> list:
        core = self.core
        auth = build_authorization(CERTIFICATES_PATH, "GET", core._mchid, core._cert_serial_no, core._private_key)
        headers = {"Authorization": auth, "Accept": "application/json", "User-Agent": "gym-payments"}
        if self.settings.public_key_mode:
            headers["Wechatpay-Serial"] = self.settings.wechatpay_public_key_id
        response = await core._client.fetch("GET", self.settings.wechatpay_gateway + CERTIFICATES_PATH, headers)
        if response.status_code != 200:
            raise PaymentGatewayError(f"HTTP_{response.status_code}", "下载平台证书失败", response.status_code, True)
        found, used = {}, set()
        try:
            items = json.loads(response.content).get("data") or []
            for item in items:
                pem, key = self.apiv3.decrypt(item.get("encrypt_certificate"), "certificates")
                used.add(key)
                cert = x509.load_pem_x509_certificate(pem)
                if valid_now(cert):
                    found[cert.serial_number] = cert
        except UndecryptableResource as e:
            raise PaymentGatewayError("APIV3_KEY_MISMATCH", "平台证书解密失败", 200, True) from e
        except (ValueError, TypeError, AttributeError, MalformedResource) as e:
            raise PaymentGatewayError("BAD_ANSWER", "平台证书列表格式错误", 200, True) from e
        serial = response.headers.get("Wechatpay-Serial", "")
        signer = found.get(int(serial, 16)) if serial and all(c in "0123456789abcdefABCDEF" for c in serial) else None
        signer_key = signer.public_key() if signer is not None else self.keys.known(serial)
        timestamp = response.headers.get("Wechatpay-Timestamp", "")
        if signer_key is None or not self.keys.timestamp_ok(timestamp) or not self.keys.verify(
                signer_key, timestamp, response.headers.get("Wechatpay-Nonce", ""), response.content,
                response.headers.get("Wechatpay-Signature", "")):
            raise PaymentGatewayError("SIGN_VERIFY_FAILED", "平台证书列表验签失败", 200, True)
        if PREVIOUS in used:
            log.info("platform certificate list decrypted with WECHATPAY_APIV3_KEY_PREVIOUS: WeChat Pay still "
                     "encrypts with the key before the change")
        try:
            self.keys.save_directory(found.values())
        except OSError as e:  # the certificates are verified and used; only the cache for the next start is lost
            log.warning("caching the platform certificates in WECHATPAY_CERT_DIR failed: %s", e)
        return list(found.values())

    async def _call(self, what, coro_factory, ok=(200, 204)):
        started = time.monotonic()
        outcome = "error"
        try:
            status, body = await self._answer(what, coro_factory, ok)
            outcome = "ok"
            return status, body
        except PaymentGatewayError as e:
            outcome = "unavailable" if e.code in ("UNAVAILABLE", "SIGN_VERIFY_FAILED") else e.code.lower()[:32]
            raise
        finally:
            metrics.WECHATPAY_DURATION.labels(what).observe(time.monotonic() - started)
            metrics.WECHATPAY_CALLS.labels(what, outcome).inc()

    async def _answer(self, what, coro_factory, ok):
        await self.open()
        try:
            status, text = await coro_factory()
        except TransportError as e:
            raise PaymentGatewayError("UNAVAILABLE", f"微信支付网络异常: {type(e).__name__}", retryable=True) from e
        except UnverifiedAnswer as e:
            log.error("WeChat Pay %s: %s", what, e)
            raise PaymentGatewayError("SIGN_VERIFY_FAILED", "微信支付应答验签失败", retryable=True) from e
        except Exception as e:  # the SDK's answer-signature failure is a bare Exception
            if "verify the signature" not in str(e):
                raise
            log.error("WeChat Pay %s: answer not verified: %s", what, e)
            raise PaymentGatewayError("SIGN_VERIFY_FAILED", "微信支付应答验签失败", retryable=True) from e
        body = {}
        if text:
            try:
                body = json.loads(text)
            except (ValueError, TypeError):
                body = {}
        if status in ok:
            return status, body
        code = body.get("code") or f"HTTP_{status}"
        message = body.get("message") or "微信支付返回错误"
        retryable = status >= 500 or status == 429 or code in RETRYABLE_CODES
        raise PaymentGatewayError(code, message, http_status=status, retryable=retryable)

    async def place_order(self, trade_type, out_trade_no, description, total_fen, time_expire, openid=None):
        """Place a JSAPI (with the payer's openid) or NATIVE order; returns prepay_id or code_url."""
        pay_type = WeChatPayType.JSAPI if trade_type == "JSAPI" else WeChatPayType.NATIVE
        kwargs = dict(
            description=description, out_trade_no=out_trade_no, amount={"total": total_fen, "currency": "CNY"},
            time_expire=_rfc3339_cn(time_expire), notify_url=self.settings.wechatpay_notify_url, pay_type=pay_type,
        )
        if openid:
            kwargs["payer"] = {"openid": openid}
        _, body = await self._call("pay", lambda: self.client.pay(**kwargs))
        key = "prepay_id" if trade_type == "JSAPI" else "code_url"
        if not body.get(key):
            raise PaymentGatewayError("BAD_ANSWER", "微信支付应答缺少字段", retryable=True)
        return body[key]

    async def query(self, out_trade_no):
        """The transaction as WeChat Pay knows it, or None when it has no such order."""
        try:
            _, body = await self._call("query", lambda: self.client.query(out_trade_no=out_trade_no))
        except PaymentGatewayError as e:
            if e.code == "ORDER_NOT_EXIST":
                return None
            raise
        return body

    async def close_order(self, out_trade_no) -> str:
        """Close an unpaid order: 'closed', 'paid' (WeChat Pay says ORDER_PAID) or 'absent' (never placed)."""
        try:
            await self._call("close", lambda: self.client.close(out_trade_no))
        except PaymentGatewayError as e:
            if e.code == "ORDER_PAID":
                return "paid"
            if e.code == "ORDER_NOT_EXIST":
                return "absent"
            if e.code == "ORDER_CLOSED":
                return "closed"
            raise
        return "closed"

    async def refund(self, out_refund_no, out_trade_no, refund_fen, total_fen, reason):
        """Ask for a refund (retry with the same out_refund_no); returns WeChat Pay's refund JSON."""
        _, body = await self._call("refund", lambda: self.client.refund(
            out_refund_no=out_refund_no, out_trade_no=out_trade_no, reason=reason,
            amount={"refund": refund_fen, "total": total_fen, "currency": "CNY"},
            notify_url=self.settings.wechatpay_refund_notify_url))
        return body

    async def query_refund(self, out_refund_no):
        """The refund as WeChat Pay knows it, or None when unknown."""
        try:
            _, body = await self._call("query_refund", lambda: self.client.query_refund(out_refund_no=out_refund_no))
        except PaymentGatewayError as e:
            if e.code == "RESOURCE_NOT_EXISTS":
                return None
            raise
        return body

    async def trade_bill(self, bill_date: str) -> dict:
        """The signed answer of `GET /v3/bill/tradebill` for a day (all trades, gzip): `hash_type`, `hash_value`,
        `download_url`. Raises PaymentGatewayError (`NO_STATEMENT_EXIST`, `STATEMENT_CREATING`, ... as WeChat Pay
        names them)."""
        _, body = await self._call("trade_bill", lambda: self.client.trade_bill(
            bill_date=bill_date, bill_type="ALL", tar_type="GZIP"))
        return body

    async def download_bill(self, download_url: str) -> bytes:
        """The bytes at a bill's `download_url` (as served: gzip), asked with the merchant's signature on the same
        HTTP client; WeChat Pay does not sign the answer, so the caller checks them against the signed hash.

        The URL must be on WECHATPAY_GATEWAY's own host and path: the merchant's signature goes nowhere else.
        """
        started = time.monotonic()
        outcome = "error"
        try:
            content = await self._download(download_url)
            outcome = "ok"
            return content
        except PaymentGatewayError as e:
            outcome = e.code.lower()[:32]
            raise
        finally:
            metrics.WECHATPAY_DURATION.labels("download_bill").observe(time.monotonic() - started)
            metrics.WECHATPAY_CALLS.labels("download_bill", outcome).inc()

    async def _download(self, download_url: str) -> bytes:
        await self.open()
        gateway, url = _url_parts(self.settings.wechatpay_gateway), _url_parts(str(download_url or ""))
        if url is None or gateway is None or url[:3] != gateway[:3] or url[3] != BILL_DOWNLOAD_PATH:
            raise PaymentGatewayError("BAD_DOWNLOAD_URL", "账单下载地址不是微信支付的地址")
        target = url[3] + (f"?{url[4]}" if url[4] else "")
        core = self.core
        auth = build_authorization(target, "GET", core._mchid, core._cert_serial_no, core._private_key)
        headers = {"Authorization": auth, "Accept": "application/json", "User-Agent": "gym-payments"}
        try:  # as served (gzip): the signed hash is of these bytes
            response = await core._client.fetch("GET", str(download_url), headers, max_bytes=BILL_MAX_BYTES,
                                                decompress=False)
        except TooLarge as e:
            raise PaymentGatewayError("BILL_TOO_LARGE", "账单文件过大") from e
        except TransportError as e:
            raise PaymentGatewayError("UNAVAILABLE", f"微信支付网络异常: {type(e).__name__}", retryable=True) from e
        content = response.content
        if response.status_code != 200:
            code = _error_code(content) or f"HTTP_{response.status_code}"
            retryable = response.status_code >= 500 or response.status_code == 429
            raise PaymentGatewayError(code, "下载账单失败", response.status_code, retryable)
        return content

    def request_payment_params(self, prepay_id) -> dict:
        """The wx.requestPayment parameters, paySign made with the merchant key."""
        appid = self.settings.wechat_appid
        timestamp = str(int(time.time()))
        nonce = secrets.token_hex(16)
        package = f"prepay_id={prepay_id}"
        pay_sign = self.client.sign([appid, timestamp, nonce, package])
        return {"appId": appid, "timeStamp": timestamp, "nonceStr": nonce, "package": package,
                "signType": "RSA", "paySign": pay_sign}
