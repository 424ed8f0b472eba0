"""Field checks of order and refund requests, answering PARAM_ERROR the way WeChat Pay words it."""
import json
import re
from urllib.parse import urlsplit

from .clock import parse_rfc3339
from .errors import SandboxError

OUT_TRADE_NO = re.compile(r"^[0-9A-Za-z_\-|*]{6,32}$")
OUT_REFUND_NO = re.compile(r"^[0-9A-Za-z_\-|*@]{1,64}$")

LABELS = {
    "appid": "应用ID", "mchid": "直连商户号", "description": "商品描述", "out_trade_no": "商户订单号",
    "time_expire": "交易结束时间", "attach": "附加数据", "notify_url": "通知地址", "amount": "订单金额",
    "amount/total": "总金额", "amount/currency": "货币类型", "payer": "支付者", "payer/openid": "用户标识",
    "transaction_id": "微信支付订单号", "out_refund_no": "商户退款单号", "reason": "退款原因",
    "amount/refund": "退款金额",
}


def param_error(field, rule, value=None):
    """400 PARAM_ERROR naming the field the way WeChat Pay does."""
    message = f"输入源“/body/{field}”映射到值字段“{LABELS.get(field, field)}”{rule}"
    detail = {"location": "body", "field": f"/body/{field}"}
    if value is not None:
        detail["value"] = value
    return SandboxError(400, "PARAM_ERROR", message, detail)


def parse_body(raw):
    """The JSON object of a request body, or PARAM_ERROR."""
    try:
        body = json.loads(raw.decode("utf-8")) if raw else None
    except (UnicodeDecodeError, ValueError):
        body = None
    if not isinstance(body, dict):
        raise SandboxError(400, "PARAM_ERROR", "请求体不是合法的JSON对象", {"location": "body"})
    return body


def _get(body, field):
    value = body
    for part in field.split("/"):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def require_string(body, field, max_len, min_len=1, pattern=None):
    """The string at `field` (a/b paths), checked for presence, length and pattern."""
    value = _get(body, field)
    if value is None:
        raise param_error(field, "必填性规则校验失败，此字段为必填项")
    if not isinstance(value, str):
        raise param_error(field, "类型规则校验失败，期望类型为字符串", value)
    if len(value) > max_len:
        raise param_error(field, f"字符串规则校验失败，字符数 {len(value)}，大于最大值 {max_len}", value)
    if len(value) < min_len:
        raise param_error(field, f"字符串规则校验失败，字符数 {len(value)}，小于最小值 {min_len}", value)
    if pattern is not None and not pattern.match(value):
        raise param_error(field, "字符串规则校验失败，字符串不符合规则", value)
    return value


def optional_string(body, field, max_len):
    """Like require_string, but absent is allowed (None)."""
    return None if _get(body, field) is None else require_string(body, field, max_len)


def require_int(body, field, minimum=1):
    """The integer at `field`, at least `minimum` (booleans and floats refused)."""
    value = _get(body, field)
    if value is None:
        raise param_error(field, "必填性规则校验失败，此字段为必填项")
    if not isinstance(value, int) or isinstance(value, bool):
        raise param_error(field, "类型规则校验失败，期望类型为整数", value)
    if value < minimum:
        raise param_error(field, f"整数规则校验失败，值 {value}，小于最小值 {minimum}", value)
    return value


def require_currency(body, field, required):
    """'CNY': the one currency of a domestic merchant (absent allowed unless `required`)."""
    value = _get(body, field)
    if value is None and not required:
        return "CNY"
    if value != "CNY":
        if value is None:
            raise param_error(field, "必填性规则校验失败，此字段为必填项")
        raise param_error(field, "枚举规则校验失败，值必须为 CNY", value)
    return value


def notify_url(body, required):
    """An absolute http(s) URL without a query (the sandbox, unlike WeChat Pay, accepts plain http)."""
    value = require_string(body, "notify_url", 256) if required else optional_string(body, "notify_url", 256)
    if value is None:
        return None
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise param_error("notify_url", "字符串规则校验失败，必须是不带参数的合法 URL", value)
    return value


def transaction_order(body, trade_type):
    """Check a JSAPI or Native order request; returns the normalized fields."""
    order = {
        "appid": require_string(body, "appid", 32),
        "mchid": require_string(body, "mchid", 32),
        "description": require_string(body, "description", 127),
        "out_trade_no": require_string(body, "out_trade_no", 32, 6, OUT_TRADE_NO),
        "attach": optional_string(body, "attach", 128),
        "notify_url": notify_url(body, required=True),
        "time_expire": None,
    }
    if body.get("time_expire") is not None:
        text = require_string(body, "time_expire", 64)
        order["time_expire"] = parse_rfc3339(text)
        if order["time_expire"] is None:
            raise param_error("time_expire", "字符串规则校验失败，字符串必须是符合 RFC3339 日期时间格式", text)
    if not isinstance(body.get("amount"), dict):
        raise param_error("amount", "必填性规则校验失败，此字段为必填项")
    order["total"] = require_int(body, "amount/total", 1)
    order["currency"] = require_currency(body, "amount/currency", required=False)
    order["payer_openid"] = None
    if trade_type == "JSAPI":
        if not isinstance(body.get("payer"), dict):
            raise param_error("payer", "必填性规则校验失败，此字段为必填项")
        order["payer_openid"] = require_string(body, "payer/openid", 128)
    return order


def refund_request(body):
    """Check a refund request; returns the normalized fields."""
    refund = {
        "out_refund_no": require_string(body, "out_refund_no", 64, 1, OUT_REFUND_NO),
        "transaction_id": optional_string(body, "transaction_id", 32),
        "out_trade_no": optional_string(body, "out_trade_no", 32),
        "reason": optional_string(body, "reason", 80),
        "notify_url": notify_url(body, required=False),
        "funds_account": optional_string(body, "funds_account", 32),
    }
    if not refund["transaction_id"] and not refund["out_trade_no"]:
        raise param_error("out_trade_no", "必填性规则校验失败，transaction_id 与 out_trade_no 必须二选一")
    if not isinstance(body.get("amount"), dict):
        raise param_error("amount", "必填性规则校验失败，此字段为必填项")
    refund["refund"] = require_int(body, "amount/refund", 1)
    refund["total"] = require_int(body, "amount/total", 1)
    refund["currency"] = require_currency(body, "amount/currency", required=True)
    return refund
