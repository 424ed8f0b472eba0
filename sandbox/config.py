"""Settings changeable at run time through POST /sandbox/config."""
from dataclasses import asdict, dataclass

from .errors import SandboxError

KEY_MODES = ("pubkey", "cert", "either")  # either: the public key and the certificate in turn, as in a migration
ANSWER_KEY_MODES = ("request",) + KEY_MODES  # request: the public key when the request's Wechatpay-Serial names one


@dataclass
class RuntimeConfig:
    """What /sandbox/config shows and changes; /sandbox/reset brings the start values back."""

    notify_key_mode: str = "pubkey"
    answer_key_mode: str = "request"
    refund_auto_settle: bool = True
    refund_settle_seconds: float = 2.0  # multiplied by --time-scale
    bill_url_ttl_seconds: float = 300.0  # how long a bill's download_url works; real seconds, not scaled

    def update(self, changes):
        """Apply a dict of changes, refusing unknown keys and wrong types with 400."""
        for key, value in changes.items():
            if key == "notify_key_mode" and value in KEY_MODES:
                self.notify_key_mode = value
            elif key == "answer_key_mode" and value in ANSWER_KEY_MODES:
                self.answer_key_mode = value
            elif key == "refund_auto_settle" and isinstance(value, bool):
                self.refund_auto_settle = value
            elif key == "refund_settle_seconds" and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and value >= 0:
                self.refund_settle_seconds = float(value)
            elif key == "bill_url_ttl_seconds" and isinstance(value, (int, float)) \
                    and not isinstance(value, bool) and 0 <= value <= 86400:
                self.bill_url_ttl_seconds = float(value)
            else:
                raise SandboxError(400, "INVALID_REQUEST", f"配置项 {key} 不存在或取值无效", {"key": key})
        return self

    def view(self):
        """The settings as JSON."""
        return asdict(self)
