"""Money and time at the edges (API, pages, exports, messages): yuan from integer fen, ISO 8601 in Beijing time
(+08:00) and back to the naive UTC the database keeps, the Beijing day, and the shape of a public order id."""
from __future__ import annotations

import datetime as dt
import re

CN = dt.timezone(dt.timedelta(hours=8))
EARLIEST_YEAR, LATEST_YEAR = 2000, 2200
_ORDER_ID = re.compile(r"[0-9a-f]{32}")


def yuan(fen: int) -> str:
    """Integer fen as a yuan string with two decimals (`-1.50` for a negative amount)."""
    sign = "-" if fen < 0 else ""
    fen = abs(int(fen))
    return f"{sign}{fen // 100}.{fen % 100:02d}"


def iso(value: dt.datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 in +08:00, or None."""
    if value is None:
        return None
    return beijing(value).isoformat(timespec="seconds")


def beijing(value: dt.datetime) -> dt.datetime:
    """A stored naive-UTC time as an aware Beijing time."""
    return value.replace(tzinfo=dt.timezone.utc).astimezone(CN)


def beijing_minute(value: dt.datetime) -> str:
    """A stored naive-UTC time as `2026-11-24 15:12` on the Beijing wall clock (for people)."""
    return beijing(value).strftime("%Y-%m-%d %H:%M")


def to_utc(value: dt.datetime) -> dt.datetime:
    """An aware time as the naive UTC the database keeps."""
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The start and end (exclusive) of a Beijing day, as naive UTC."""
    start = dt.datetime(day.year, day.month, day.day, tzinfo=CN)
    return to_utc(start), to_utc(start + dt.timedelta(days=1))


def beijing_today(now: dt.datetime | None = None) -> dt.date:
    """Today in Beijing (`now` is naive UTC, the current time by default)."""
    return beijing(now or dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)).date()


def parse_iso(text: str) -> dt.datetime:
    """An ISO 8601 time that carries an offset, between the years 2000 and 2200, as naive UTC; ValueError otherwise."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not an ISO 8601 time")
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("time without an offset")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError("time out of range")
    return to_utc(value)


def is_order_id(value) -> bool:
    """True for a public order id (WeChat Pay's out_trade_no): 32 characters [0-9a-f] (contract §2)."""
    return isinstance(value, str) and _ORDER_ID.fullmatch(value) is not None
