"""The sandbox's one error type: an HTTP status, a WeChat error code and a Chinese message."""


class SandboxError(Exception):
    """An answer that is not a success, as WeChat Pay would give it."""

    def __init__(self, status, code, message, detail=None):
        super().__init__(f"{status} {code} {message}")
        self.status = status
        self.code = code
        self.message = message
        self.detail = detail

    def body(self):
        """The JSON body WeChat Pay answers with: code, message and, when known, detail."""
        body = {"code": self.code, "message": self.message}
        if self.detail is not None:
            body["detail"] = self.detail
        return body


def order_not_exist():
    """404 ORDER_NOT_EXIST, for a query or close of an unknown order."""
    return SandboxError(404, "ORDER_NOT_EXIST", "订单不存在")


def invalid_request(message, detail=None):
    """400 INVALID_REQUEST: well-formed, but against a business rule."""
    return SandboxError(400, "INVALID_REQUEST", message, detail)


def conflict(code, message, **extra):
    """409 for a control-API action the current state does not allow."""
    return SandboxError(409, code, message, extra or None)
