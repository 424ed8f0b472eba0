"""What the pages show people: Chinese names of statuses, kinds and outcomes, times in Beijing, money in yuan."""
from __future__ import annotations

from services import formats

ORDER_STATUS = {"pending": "待支付", "paid": "已支付", "failed": "支付失败", "cancelled": "已取消",
                "expired": "已过期", "refund_required": "待退款", "refunded": "已退款"}
RESERVATION_STATUS = {"temporary": "临时占位", "confirmed": "已确认", "cancelled": "已取消", "expired": "已过期"}
REFUND_STATUS = {"PROCESSING": "处理中", "SUCCESS": "退款成功", "CLOSED": "已关闭", "ABNORMAL": "异常（需人工处理）",
                 "REJECTED": "被微信支付拒绝"}
ATTENDANCE = {"attended": "到课", "no_show": "爽约"}
WAITLIST_STATUS = {"waiting": "候补中", "offered": "已保留名额", "booked": "已预约", "lapsed": "已失效", "left": "已退出"}
KIND = {"payment": "支付通知", "refund": "退款通知"}
OUTCOME = {"applied": "已处理", "duplicate": "重复", "anomaly": "异常", "ignored": "已忽略",
           "unknown_order": "未知订单", "refused": "已拒收"}
BILL_STATUS = {"matched": "已对平", "discrepancies": "有差异", "no_trades": "无交易", "not_ready": "账单未生成",
               "failed": "对账失败", "running": "对账中"}
CATEGORY = {"missing_in_ledger": "微信有、系统无", "missing_at_wechat": "系统有、微信无", "amount_mismatch": "金额不一致"}
RESOLUTION = {"mended": "已自动修复", "accepted": "已确认", "written_off": "已核销"}
DISCREPANCY_KIND = {"payment": "支付", "refund": "退款"}
ACTOR = {"user": "家长", "operator": "运营人员", "system": "系统", "wechat": "微信支付"}


def label(table: dict, value) -> str:
    """The Chinese name of a value, or the value itself when it has none."""
    if value is None:
        return "—"
    return table.get(value, str(value))


def when(iso_text) -> str:
    """An ISO 8601 time from the services (already +08:00) as `2026-11-24 15:12`."""
    if not iso_text:
        return "—"
    text = str(iso_text)
    return text[:16].replace("T", " ") if len(text) >= 16 and text[10] == "T" else text


def yuan(fen) -> str:
    """Integer fen as `¥200.00` (`-¥1.50` for a negative amount)."""
    if fen is None:
        return "—"
    text = formats.yuan(fen)
    return f"-¥{text[1:]}" if text.startswith("-") else f"¥{text}"


def actor(text) -> str:
    """An audit actor (`operator:alice`, `system`, ...) in Chinese."""
    if not text:
        return "—"
    kind, _, name = str(text).partition(":")
    return f"{ACTOR.get(kind, kind)} {name}".strip()


def when_utc(value) -> str:
    """A stored naive-UTC time as `2026-11-24 15:12` Beijing (for rows read straight from the database)."""
    return "—" if value is None else formats.beijing_minute(value)
