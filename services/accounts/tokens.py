"""Signed, expiring session tokens for users and operators (HMAC-SHA256 over a compact JSON payload)."""
from __future__ import annotations

import base64
import functools
import hashlib
import hmac
import json
import time

import errors

USER_TOKEN_SECONDS = 7 * 24 * 3600
OPERATOR_TOKEN_SECONDS = 8 * 3600


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def issue(secret: str, kind: str, subject: int, ttl: int, now: float | None = None) -> str:
    """A token saying `kind` `subject` until now + ttl."""
    issued = now or time.time()
    # iat to the millisecond: a logout or a password change ends the tokens issued before it, even in its second
    payload = {"k": kind, "sub": subject, "iat": round(issued, 3), "exp": int(issued) + ttl}
    body = _b64(json.dumps(payload, separators=(",", ":")).encode())
    sig = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    return f"{body}.{_b64(sig)}"


def verify(secret: str, token: str, kind: str, now: float | None = None, remember: bool = True) -> int:
    """The subject of a valid, unexpired token of `kind`; raises 401 UNAUTHENTICATED otherwise.

    remember=False checks a token used once (a WebSocket's, at its handshake) without keeping it in the cache."""
    return claims(secret, token, kind, now, remember)["sub"]


def _signed_payload(secret: str, token: str) -> tuple:
    """The payload of a token whose signature is right, as sorted (key, value) pairs; ValueError otherwise."""
    body, sig = token.split(".", 1)
    expected = hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()
    if not hmac.compare_digest(expected, _unb64(sig)):
        raise ValueError("signature")
    payload = json.loads(_unb64(body))
    if not isinstance(payload, dict):
        raise ValueError("payload")
    return tuple(sorted(payload.items()))


# A parent's token comes with every request: its signature and JSON are checked once per process rather than on
# each (only tokens whose signature verified are kept, so no stranger can fill the cache; the kind and the expiry are
# checked on every use, by claims()). Each entry holds about 0.9 KiB.
_remembered_payload = functools.lru_cache(maxsize=4096)(_signed_payload)


def claims(secret: str, token: str, kind: str, now: float | None = None, remember: bool = True) -> dict:
    """The payload of a valid, unexpired token of `kind` (sub, iat, exp); raises 401 UNAUTHENTICATED otherwise."""
    if not isinstance(token, str) or len(token) > 512:
        raise errors.unauthenticated("登录状态无效，请重新登录")
    try:
        payload = dict((_remembered_payload if remember else _signed_payload)(secret, token))
    except (ValueError, TypeError):
        raise errors.unauthenticated("登录状态无效，请重新登录") from None
    if payload.get("k") != kind or not isinstance(payload.get("sub"), int):
        raise errors.unauthenticated("登录状态无效，请重新登录")
    if not isinstance(payload.get("exp"), int) or payload["exp"] <= (now or time.time()):
        raise errors.unauthenticated("登录已过期，请重新登录")
    return payload
