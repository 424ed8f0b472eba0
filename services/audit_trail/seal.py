"""What a seal is: the keys derived from AUDIT_KEY_FILE, a row's canonical form, its personal digest and its seal.

Both the sealer and the verifiers read rows with `ROW_COLUMNS` and compute with the functions here, from the values
as MySQL returns them, so that a row seals and verifies alike whatever wrote it. The formats are stored (every seal
depends on them): they change only with a new version label, never in place.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json

GENESIS = "0" * 64  # the "previous seal" of the first row (models/migrations.py: the head's first value)
VERSION = b"gym-audit-v1"

# The columns the seal covers directly, and the personal parts it covers through their digest (retention erases
# those). Every column of payment_audit_log is in one of the two lists, except the digest and the seal themselves.
SEALED_COLUMNS = ("id", "order_id", "transaction_id", "refund_id", "user_id", "operator_id", "actor", "action_type",
                  "action_detail", "entity", "old_status", "new_status", "error_message", "request_id", "created_at")
PERSONAL_COLUMNS = ("ip_address", "user_agent", "request_data", "response_data")
ROW_COLUMNS = (*SEALED_COLUMNS, *PERSONAL_COLUMNS, "personal_digest", "seal")
ROW_SELECT = ", ".join(f"`{c}`" for c in ROW_COLUMNS)
_N_SEALED, _N_PERSONAL = len(SEALED_COLUMNS), len(PERSONAL_COLUMNS)
ID, CREATED_AT = 0, SEALED_COLUMNS.index("created_at")
DIGEST, SEAL = len(ROW_COLUMNS) - 2, len(ROW_COLUMNS) - 1


def _derive(key: bytes, label: str) -> bytes:
    return hmac.new(key, VERSION + b" " + label.encode(), hashlib.sha256).digest()


def _value(value):
    """What JSON cannot say itself: times as ISO 8601 with microseconds, bytes as text, anything else as str()."""
    if isinstance(value, dt.datetime):
        return value.isoformat(timespec="microseconds")
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "surrogateescape")
    return str(value)


# Built once (json.dumps with options builds an encoder per call): the C encoder, calling _value only for the time.
_ENCODE = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=_value).encode


def canonical(values) -> bytes:
    """A JSON array of the values (times as ISO 8601 with microseconds): one byte string per row content."""
    return _ENCODE(list(values)).encode("utf-8", "surrogateescape")


class _Mac:
    """HMAC-SHA256 under one 32-byte key (RFC 2104, what hmac.new computes) with the padded key's hash states made
    once: a verification computes two a row, and this is half the cost of hmac.new each time."""

    def __init__(self, key: bytes):
        padded = key.ljust(64, b"\0")
        self._inner = hashlib.sha256(bytes(b ^ 0x36 for b in padded))
        self._outer = hashlib.sha256(bytes(b ^ 0x5C for b in padded))

    def hexdigest(self, message: bytes) -> str:
        inner = self._inner.copy()
        inner.update(message)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return outer.hexdigest()


class SealKeys:
    """The three keys derived from the audit key: seals, personal digests, and the key id the head records."""

    def __init__(self, key: bytes):
        self._seal = _Mac(_derive(key, "seal"))
        self._personal = _Mac(_derive(key, "personal"))
        self.key_id = _derive(key, "key id")[:4].hex()

    def personal_digest(self, row) -> str:
        """The digest of a row's personal parts (`row` as ROW_COLUMNS reads it)."""
        return self._personal.hexdigest(canonical(row[_N_SEALED:_N_SEALED + _N_PERSONAL]))

    def seal(self, previous: str, row, digest: str) -> str:
        """The seal of a row that follows the seal `previous`, its personal parts given by their digest."""
        return self._seal.hexdigest(previous.encode("ascii") + b"|" + canonical(row[:_N_SEALED]) + b"|"
                                    + digest.encode("ascii"))


def personal_parts_erased(row) -> bool:
    """True when every personal part of the row is empty (as the retention job leaves it)."""
    return all(v is None for v in row[_N_SEALED:_N_SEALED + _N_PERSONAL])
