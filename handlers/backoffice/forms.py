"""Form fields as people type them (yuan, Beijing wall-clock time, whole numbers) into what the services take."""
from __future__ import annotations

import datetime as dt
import re
from decimal import Decimal, InvalidOperation

import errors

_YUAN = re.compile(r"^[0-9]{1,7}(\.[0-9]{1,2})?$")


def fen_from_yuan(text: str, field: str) -> int:
    """`200`, `200.5` or `200.50` yuan as integer fen; 400 for anything else (no float on the way)."""
    text = (text or "").strip().removeprefix("¥")
    if not _YUAN.match(text):
        raise errors.invalid_request("金额须为数字，最多两位小数（单位：元）", field=field)
    try:
        return int(Decimal(text) * 100)
    except InvalidOperation:
        raise errors.invalid_request("金额须为数字，最多两位小数（单位：元）", field=field) from None


def iso_from_local(text: str, field: str) -> str:
    """A `datetime-local` value (the gym's wall clock, Beijing) as ISO 8601 with +08:00; 400 otherwise."""
    try:
        value = dt.datetime.fromisoformat((text or "").strip())
    except ValueError:
        raise errors.invalid_request("请填写开始时间（年-月-日 时:分）", field=field) from None
    if value.tzinfo is not None:
        raise errors.invalid_request("请填写开始时间（年-月-日 时:分）", field=field)
    return value.replace(tzinfo=dt.timezone(dt.timedelta(hours=8))).isoformat()


def whole_number(text: str, field: str, label: str) -> int:
    """A non-negative whole number typed in a form; 400 otherwise."""
    text = (text or "").strip()
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise errors.invalid_request(f"{label}须为整数", field=field)
    return int(text)


def local_input(iso_text) -> str:
    """An ISO time from the services as a `datetime-local` value (Beijing wall clock)."""
    return str(iso_text)[:16] if iso_text else ""

