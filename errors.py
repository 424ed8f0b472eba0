"""The one error type of the service: a stable code, a Chinese message for the person, an HTTP status."""
from __future__ import annotations


class ServiceError(Exception):
    """A business or input error that the API answers as `{"error": {"code", "message", ...}}`."""

    def __init__(self, status: int, code: str, message: str, *, retry_after: int = 1, **extra):
        super().__init__(f"{code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after  # a 503's Retry-After, in seconds
        self.extra = extra

    def body(self) -> dict:
        """The JSON error body of the contract."""
        return {"error": {"code": self.code, "message": self.message, **self.extra}}


def invalid_request(message="请求参数错误", **extra):
    """400 INVALID_REQUEST."""
    return ServiceError(400, "INVALID_REQUEST", message, **extra)


def unauthenticated(message="请先登录"):
    """401 UNAUTHENTICATED."""
    return ServiceError(401, "UNAUTHENTICATED", message)


def forbidden(message="无权执行此操作"):
    """403 FORBIDDEN."""
    return ServiceError(403, "FORBIDDEN", message)


def not_found(message="资源不存在"):
    """404 NOT_FOUND."""
    return ServiceError(404, "NOT_FOUND", message)


def trial_already_booked():
    """409 TRIAL_ALREADY_BOOKED, worded as the seeds say."""
    return ServiceError(409, "TRIAL_ALREADY_BOOKED", "您已预约过体验课，无法重复预约")


def pending_order_exists(order_id):
    """409 PENDING_ORDER_EXISTS naming the open order."""
    return ServiceError(409, "PENDING_ORDER_EXISTS", "您有一笔待支付的订单，请先完成支付或取消", order_id=order_id)


def sold_out(alternatives=()):
    """409 SOLD_OUT, with `alternatives`: other upcoming sessions with a seat left (services.orders.alternatives)."""
    return ServiceError(409, "SOLD_OUT", "名额已满", alternatives=list(alternatives))


def seats_available():
    """409 SEATS_AVAILABLE: a waitlist is only for a session with no seat left."""
    return ServiceError(409, "SEATS_AVAILABLE", "该课程还有名额，请直接预约")


def order_not_payable(message="订单已不可支付"):
    """409 ORDER_NOT_PAYABLE."""
    return ServiceError(409, "ORDER_NOT_PAYABLE", message)


def amount_mismatch():
    """422 AMOUNT_MISMATCH."""
    return ServiceError(422, "AMOUNT_MISMATCH", "订单金额与体验课价格不符")


def rate_limited():
    """429 RATE_LIMITED."""
    return ServiceError(429, "RATE_LIMITED", "请求过于频繁，请稍后再试")


def payment_unavailable(message="微信支付暂时不可用，请稍后重试"):
    """503 PAYMENT_UNAVAILABLE: safe to retry."""
    return ServiceError(503, "PAYMENT_UNAVAILABLE", message)


def service_unavailable(message="服务暂时不可用，请稍后重试"):
    """503 SERVICE_UNAVAILABLE: safe to retry."""
    return ServiceError(503, "SERVICE_UNAVAILABLE", message)


def order_not_refundable():
    """409 ORDER_NOT_REFUNDABLE."""
    return ServiceError(409, "ORDER_NOT_REFUNDABLE", "订单不是已支付或待退款状态，不能退款")


def refund_exceeds_paid():
    """422 REFUND_EXCEEDS_PAID."""
    return ServiceError(422, "REFUND_EXCEEDS_PAID", "退款金额须在 1 分到可退金额之间")


def refund_rejected(message):
    """409 REFUND_REJECTED with WeChat Pay's own words."""
    return ServiceError(409, "REFUND_REJECTED", message or "微信支付拒绝了退款")


def operator_exists():
    """409 OPERATOR_EXISTS."""
    return ServiceError(409, "OPERATOR_EXISTS", "该用户名已存在")
