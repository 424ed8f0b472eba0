"""WeChat Pay API v3 endpoints: authenticated requests, signed answers."""
import time

from cryptography.hazmat.primitives import serialization

from .. import clock
from ..crypto import encrypt_resource, parse_authorization, request_message, signed_headers, verify
from ..errors import SandboxError
from ..validation import parse_body
from .base import RecordedHandler, dump

CLOCK_SKEW = 300  # seconds a request timestamp may be off


def sign_error(issue):
    """401 SIGN_ERROR, with the reason in detail."""
    return SandboxError(401, "SIGN_ERROR", "签名错误,请检查后再试",
                        {"location": "authorization", "field": "signature", "issue": issue})


class PayHandler(RecordedHandler):
    """A WeChat Pay v3 endpoint: checks the merchant's signature, signs every 2xx answer."""

    signs_answers = True  # the bill download is the one endpoint whose answers WeChat Pay does not sign

    def answer_fault(self, fault):
        # WeChat Pay signs its answers to authenticated requests, refusals included; a 429 or a 5xx comes from in
        # front of that (rate limit, an overloaded or failing gateway) and is answered unsigned.
        if fault.signed and 400 <= fault.status < 500 and fault.status != 429:
            self.check_request()
        else:
            self.authenticated = False  # a `handled` fault's request was authenticated: its error still goes unsigned
        raise SandboxError(fault.status, fault.code, fault.message)

    def answer_handled_fault(self):
        """Under a `handled` fault the request has been handled: now its answer is replaced by the error."""
        if self.fault is not None and self.fault.fails and self.fault.handled:
            self.answer_fault(self.fault)

    def check_request(self):
        creds = self.sandbox.creds
        fields = parse_authorization(self.request.headers.get("Authorization"))
        if fields is None:
            raise sign_error("Authorization 缺失或格式错误")
        if fields["mchid"] != creds.mchid:
            raise sign_error("mchid 与商户号不匹配")
        merchant = creds.merchant_certificate(fields["serial_no"])
        if merchant is None:
            raise sign_error("商户证书序列号 serial_no 不存在或已失效")
        if not fields["timestamp"].isdigit() or abs(time.time() - int(fields["timestamp"])) > CLOCK_SKEW:
            raise sign_error("timestamp 与当前时间相差超过 5 分钟")
        message = request_message(self.request.method, self.request.uri, fields["timestamp"],
                                  fields["nonce_str"], self.request.body or b"")
        if not verify(merchant.cert.public_key(), message, fields["signature"]):
            raise sign_error("sign not match")
        self.authenticated = True

    def write_error(self, status_code, **kwargs):
        self.set_header("Request-ID", getattr(self, "request_id", ""))
        if not getattr(self, "authenticated", False) or not self.signs_answers:
            super().write_error(status_code, **kwargs)  # a request we could not authenticate gets no signature
            return
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SandboxError):
            self.set_status(exc.status)
        self.answer_body = self.error_body(self.get_status(), exc)
        body = dump(self.answer_body)
        self.signed_with, key, serial = self.signer()
        for name, value in signed_headers(key, serial, body).items():
            self.set_header(name, value)
        self.set_header("Content-Type", "application/json; charset=utf-8")
        self.finish(body)

    def signer(self, mode=None):
        """(mode, key, serial) of an answer: `mode`, else /sandbox/config's answer_key_mode; in its default
        `request`, the public key the request's Wechatpay-Serial names (an earlier one too), else the certificate."""
        creds = self.sandbox.creds
        asked = self.request.headers.get("Wechatpay-Serial")
        mode = mode or self.sandbox.config.answer_key_mode
        if mode == "request":
            mode = "pubkey" if creds.public_key(asked) is not None else "cert"
        return creds.signer(mode, asked)

    def answer(self, status, payload=None, mode=None):
        """Send a signed answer; the key as `signer` chooses it."""
        self.answer_handled_fault()
        body = b"" if payload is None else dump(payload)
        mode, key, serial = self.signer(mode)
        headers = signed_headers(key, serial, body)
        headers["Request-ID"] = self.request_id
        for name, value in headers.items():
            self.set_header(name, value)
        self.signed_with, self.answer_body = mode, payload
        self.set_status(status)
        if payload is not None:
            self.set_header("Content-Type", "application/json; charset=utf-8")
            self.write(body)
        self.finish()


class OrderCreateHandler(PayHandler):
    """POST /v3/pay/transactions/jsapi and /native."""

    def post(self, kind):
        self.answer(200, self.sandbox.trades.create(kind.upper(), parse_body(self.request.body)))


class OrderByOutTradeNoHandler(PayHandler):
    """GET /v3/pay/transactions/out-trade-no/{out_trade_no}?mchid=."""

    def get(self, out_trade_no):
        trades = self.sandbox.trades
        trades.check_mchid(self.get_query_argument("mchid", None))
        self.answer(200, trades.transaction(trades.get(out_trade_no)))


class OrderByTransactionIdHandler(PayHandler):
    """GET /v3/pay/transactions/id/{transaction_id}?mchid=."""

    def get(self, transaction_id):
        trades = self.sandbox.trades
        trades.check_mchid(self.get_query_argument("mchid", None))
        self.answer(200, trades.transaction(trades.get_by_transaction_id(transaction_id)))


class OrderCloseHandler(PayHandler):
    """POST /v3/pay/transactions/out-trade-no/{out_trade_no}/close."""

    def post(self, out_trade_no):
        self.sandbox.trades.check_mchid(parse_body(self.request.body).get("mchid"), location="body")
        self.sandbox.trades.close(out_trade_no)
        self.answer(204)


class RefundCreateHandler(PayHandler):
    """POST /v3/refund/domestic/refunds."""

    def post(self):
        refund = self.sandbox.create_refund(parse_body(self.request.body))
        self.answer(200, self.sandbox.refunds.view(refund))


class RefundQueryHandler(PayHandler):
    """GET /v3/refund/domestic/refunds/{out_refund_no}."""

    def get(self, out_refund_no):
        refunds = self.sandbox.refunds
        self.answer(200, refunds.view(refunds.get(out_refund_no)))


class CertificatesHandler(PayHandler):
    """GET /v3/certificates: every platform certificate still valid, encrypted with the current APIv3 key, signed
    by the current certificate."""

    def get(self):
        creds = self.sandbox.creds
        now = clock.now()
        self.answer(200, {"data": [{
            "serial_no": platform.serial,
            "effective_time": clock.iso(platform.cert.not_valid_before_utc),
            "expire_time": clock.iso(platform.cert.not_valid_after_utc),
            "encrypt_certificate": encrypt_resource(
                creds.apiv3_key, platform.cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
                "certificate"),
        } for platform in creds.platform_certs
            if platform.cert.not_valid_before_utc <= now <= platform.cert.not_valid_after_utc]}, mode="cert")


class PayNotFoundHandler(PayHandler):
    """Any other /v3/ path: authenticated like the rest, then 404."""

    def prepare_done(self):
        raise SandboxError(404, "NOT_FOUND", "请求的资源不存在", {"path": self.request.path})

    get = post = put = patch = delete = prepare_done
