"""The back office's login cookie: the operator token, signed again under a key of its own, HttpOnly and strict."""
from __future__ import annotations

import hashlib
import hmac
import ipaddress

import tornado.web

COOKIE = "gym_admin"
PATH = "/admin"
# The cookie key is derived from SECRET_KEY under its own label, so a cookie signature can never stand in for a
# token signature (or anything else signed with SECRET_KEY), and rotating SECRET_KEY ends every session too.
_LABEL = b"gym back office session cookie v1"


def cookie_secret(secret_key: str) -> str:
    """The key Tornado signs the back office's cookies with: HMAC-SHA256(SECRET_KEY, label)."""
    return hmac.new(secret_key.encode(), _LABEL, hashlib.sha256).hexdigest()


def came_over_https(request, trusted_proxies) -> bool:
    """True for TLS to us, or for `X-Forwarded-Proto: https` from a peer inside TRUSTED_PROXIES."""
    if request.protocol == "https":
        return True
    try:
        peer = ipaddress.ip_address(request.remote_ip)
    except ValueError:
        return False
    if not any(peer.version == net.version and peer in net for net in trusted_proxies):
        return False
    hops = [h.strip().lower() for v in request.headers.get_list("X-Forwarded-Proto") for h in v.split(",")]
    return bool(hops) and hops[-1] == "https"


def store(handler: tornado.web.RequestHandler, token: str, lifetime: int):
    """Put the operator token in the signed session cookie for `lifetime` seconds (the token's own)."""
    value = tornado.web.create_signed_value(cookie_secret(handler.ctx.settings.secret_key), COOKIE, token)
    handler.set_cookie(COOKIE, value, max_age=lifetime)


def load(handler: tornado.web.RequestHandler) -> str | None:
    """The operator token from a session cookie we signed, or None."""
    raw = handler.get_cookie(COOKIE)
    if not raw:
        return None
    value = tornado.web.decode_signed_value(cookie_secret(handler.ctx.settings.secret_key), COOKIE, raw,
                                            max_age_days=1)
    return value.decode() if value else None


def forget(handler: tornado.web.RequestHandler):
    """Expire the session cookie in the browser."""
    handler.clear_cookie(COOKIE)
