"""Wall-clock helpers: Beijing time (+08:00) the way WeChat Pay writes it, and RFC 3339 parsing."""
import re
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))
_RFC3339 = re.compile(r"^(\d{4}-\d{2}-\d{2})[Tt](\d{2}:\d{2}:\d{2})(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$")


def now():
    """The current time as an aware datetime in Beijing time."""
    return datetime.now(BEIJING)


def iso(moment):
    """Format like WeChat Pay: 2018-06-08T10:34:56+08:00 (seconds, Beijing offset)."""
    return moment.astimezone(BEIJING).replace(microsecond=0).isoformat()


def parse_rfc3339(text):
    """An aware datetime for an RFC 3339 date-time string, or None when it is not one."""
    if not isinstance(text, str):
        return None
    match = _RFC3339.match(text)
    if not match:
        return None
    day, time_part, fraction, offset = match.groups()
    fraction = (fraction or "")[:7]  # datetime keeps microseconds: '.' plus six digits
    offset = "+00:00" if offset in ("Z", "z") else offset
    try:
        return datetime.fromisoformat(f"{day}T{time_part}{fraction}{offset}")
    except ValueError:
        return None
