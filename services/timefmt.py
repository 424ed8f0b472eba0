"""Times at the API edge: ISO 8601 with an offset (Beijing time), parsed back to naive UTC."""
from __future__ import annotations

import datetime as dt

CN = dt.timezone(dt.timedelta(hours=8))


def iso(value: dt.datetime | None) -> str | None:
    """A stored naive-UTC time as ISO 8601 in +08:00, or None."""
    if value is None:
        return None
    return value.replace(tzinfo=dt.timezone.utc).astimezone(CN).isoformat(timespec="seconds")


EARLIEST_YEAR, LATEST_YEAR = 2000, 2200


def parse_iso(text: str) -> dt.datetime:
    """An ISO 8601 time that carries an offset, between the years 2000 and 2200, as naive UTC; ValueError otherwise."""
    if not isinstance(text, str) or len(text) > 64:
        raise ValueError("not an ISO 8601 time")
    value = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    if value.tzinfo is None:
        raise ValueError("time without an offset")
    if not EARLIEST_YEAR <= value.year <= LATEST_YEAR:
        raise ValueError("time out of range")
    return value.astimezone(dt.timezone.utc).replace(tzinfo=None)


def yuan(fen: int) -> str:
    """Integer fen as a yuan string with two decimals."""
    return f"{fen // 100}.{fen % 100:02d}"
