"""Injected faults: the next matching API requests get an error and/or added latency, or are held until released."""
import asyncio

from .errors import SandboxError

DEFAULT_CODES = {429: ("FREQUENCY_LIMITED", "频率超限"), 500: ("SYSTEM_ERROR", "系统错误"),
                 502: ("SYSTEM_ERROR", "系统错误"), 503: ("SYSTEM_ERROR", "系统繁忙，请稍后重试"),
                 504: ("SYSTEM_ERROR", "系统超时")}
LATENCY_ON = ("request", "answer")


def is_pay_path(path):
    """True for WeChat Pay API v3 paths; the rest are the mini-program open API."""
    return path.startswith("/v3/")


class Fault:
    """One rule: which requests (path prefix, method), how many, and what they get."""

    def __init__(self, spec):
        def field(name, kind, default):
            value = spec.get(name, default)
            if value is None:
                return default
            if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
                raise SandboxError(400, "INVALID_REQUEST", f"故障规则字段 {name} 类型错误", {"field": name})
            return value

        self.path_prefix = field("path_prefix", str, "")
        if not self.path_prefix.startswith("/") or self.path_prefix.startswith("/sandbox"):
            raise SandboxError(400, "INVALID_REQUEST", "path_prefix 必须以 / 开头，且不能是控制接口")
        self.method = field("method", str, "").upper() or None
        self.status = field("status", int, 0)
        self.count = field("count", int, 1)
        self.latency_ms = field("latency_ms", (int, float), 0)
        # "request": wait before the request is handled; "answer": handle it at once, hold the answer back.
        self.latency_on = field("latency_on", str, "request")
        # Held before it is handled until POST /sandbox/faults/release (or a DELETE of the faults, or a reset).
        self.hold = field("hold", bool, False)
        self.wechat_style = field("wechat_style", bool, True)
        # A WeChat Pay fault answers as WeChat Pay would (authenticated, then signed); false sends it unsigned, as a
        # forger on the path would.
        self.signed = field("signed", bool, True)
        # A failing WeChat Pay fault normally answers instead of handling the request; `handled` lets the request be
        # handled first (an order placed, a refund made) and only its answer replaced by the error.
        self.handled = field("handled", bool, False)
        self.errcode = field("errcode", int, -1)
        self.errmsg = field("errmsg", str, "system error")
        default_code, default_message = DEFAULT_CODES.get(self.status, ("SYSTEM_ERROR", "系统错误"))
        self.code = field("code", str, default_code)
        self.message = field("message", str, default_message)
        # On the open API an errcode alone is an error too (answered HTTP 200, the WeChat way).
        self.fails = bool(self.status) or (spec.get("errcode") is not None and not is_pay_path(self.path_prefix))
        if self.status and not (self.status == 200 or 400 <= self.status <= 599):
            raise SandboxError(400, "INVALID_REQUEST", "status 只能是 0、200 或 400-599")
        if self.status == 200 and is_pay_path(self.path_prefix):
            raise SandboxError(400, "INVALID_REQUEST", "支付接口的故障 status 必须是 400-599")
        if self.handled and not (self.status and is_pay_path(self.path_prefix)):
            raise SandboxError(400, "INVALID_REQUEST", "handled 只用于带 status 的支付接口故障")
        if self.latency_on not in LATENCY_ON:
            raise SandboxError(400, "INVALID_REQUEST", "latency_on 只能是 request 或 answer")
        if self.count == 0 or self.count < -1 or self.latency_ms < 0:
            raise SandboxError(400, "INVALID_REQUEST", "count 须为正数或 -1（不限次数），latency_ms 不能为负")

    def matches(self, method, path):
        """True when this rule applies to the request."""
        return path.startswith(self.path_prefix) and (self.method is None or self.method == method)

    def view(self):
        """JSON for the control API."""
        return {k: v for k, v in vars(self).items()}


class FaultBook:
    """The pending fault rules, first match wins."""

    def __init__(self):
        self.faults = []
        self.held = 0  # requests waiting under a `hold` fault now
        self._release = None  # the asyncio.Event those requests wait on

    async def hold(self):
        """Wait, unhandled, until release()."""
        if self._release is None:
            self._release = asyncio.Event()
        release = self._release
        self.held += 1
        try:
            await release.wait()
        finally:
            self.held -= 1

    def release(self) -> int:
        """Let every held request go on; how many there were."""
        held = self.held
        if self._release is not None:
            self._release.set()
            self._release = None
        return held

    def add(self, spec):
        """Add a rule from its JSON spec."""
        fault = Fault(spec)
        self.faults.append(fault)
        return fault

    def take(self, method, path):
        """The first rule matching the request, counting it down (None when none matches)."""
        for fault in self.faults:
            if fault.matches(method, path):
                if fault.count > 0:
                    fault.count -= 1
                    if fault.count == 0:
                        self.faults.remove(fault)
                return fault
        return None

    def clear(self):
        """Remove every rule and let the held requests go on."""
        self.faults.clear()
        self.release()
