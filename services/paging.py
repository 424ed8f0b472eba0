"""Cursor paging for the operators' lists (API and pages): newest first, `limit` 1–200 (default 50), an opaque
`cursor`."""
from __future__ import annotations

import base64
import json

import errors

DEFAULT_LIMIT, MAX_LIMIT = 50, 200
EMPTY_PAGE = {"items": [], "next_cursor": None}


def parse_limit(raw) -> int:
    """The page size; 400 INVALID_REQUEST outside 1–200."""
    if raw in (None, ""):
        return DEFAULT_LIMIT
    try:
        value = int(raw)
    except (TypeError, ValueError):
        raise errors.invalid_request("limit 必须是 1 到 200 的整数", field="limit") from None
    if not 1 <= value <= MAX_LIMIT:
        raise errors.invalid_request("limit 必须是 1 到 200 的整数", field="limit")
    return value


def encode_cursor(last_id: int) -> str:
    """The opaque cursor after the row with this id."""
    return base64.urlsafe_b64encode(json.dumps({"before": last_id}).encode()).decode().rstrip("=")


def decode_cursor(raw) -> int | None:
    """The id the page starts below; 400 INVALID_REQUEST for a cursor we did not make."""
    if raw in (None, ""):
        return None
    try:
        if len(raw) > 100:
            raise ValueError
        data = json.loads(base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4)))
        before = data["before"]
        if isinstance(before, bool) or not isinstance(before, int) or before < 1:
            raise ValueError
        return before
    except (ValueError, KeyError, TypeError, UnicodeDecodeError):
        raise errors.invalid_request("cursor 无效", field="cursor") from None


async def page(query, id_field, limit: int, cursor):
    """(rows, next_cursor) of a query ordered newest first by `id_field`."""
    before = decode_cursor(cursor)
    if before is not None:
        query = query.where(id_field < before)
    rows = list(await query.order_by(id_field.desc()).limit(limit + 1).aio_execute())
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, (encode_cursor(getattr(rows[-1], id_field.name)) if more and rows else None)
