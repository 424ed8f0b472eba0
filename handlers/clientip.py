"""The client's address: the socket peer, or, behind a trusted proxy, the right-most untrusted X-Forwarded-For hop."""
from __future__ import annotations

import ipaddress
import logging
import time

log = logging.getLogger("gym.proxies")


def _parse(text):
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _trusted(ip, networks) -> bool:
    return ip is not None and any(ip in net for net in networks if net.version == ip.version)


def client_ip(peer: str, forwarded_headers: list, trusted) -> str:
    """Who the request came from.

    Only a peer inside `trusted` (TRUSTED_PROXIES) has its X-Forwarded-For believed; the hops are read from the
    right, skipping trusted proxies, and the first untrusted one is the client. A malformed hop ends the walk at
    the last address we could trust.
    """
    current = _parse(peer)
    if not trusted or not _trusted(current, trusted):
        return peer
    hops = [h for header in forwarded_headers for h in header.split(",") if h.strip()]
    candidate = peer
    for hop in reversed(hops):
        ip = _parse(hop)
        if ip is None:
            break
        candidate = str(ip)
        if not _trusted(ip, trusted):
            break
    return candidate


WARN_EVERY_SECONDS = 600
UNTRUSTED_FORWARDING = ("X-Forwarded-For from a peer outside TRUSTED_PROXIES: ignored, so every client behind that "
                        "proxy looks like the proxy")


class ForwardedForWatch:
    """Notices requests that carry X-Forwarded-For from a peer outside TRUSTED_PROXIES: behind a proxy that
    TRUSTED_PROXIES does not name, every client is the proxy (one login bucket for all, METRICS_ALLOW and the audit
    IP wrong). Says so loudly in the log (at once, then every 10 minutes while it goes on) and in /readyz."""

    def __init__(self, trusted):
        self.trusted = trusted
        self.seen = 0  # such requests since the start
        self.last_peer = None
        self._warned_at = None

    def observe(self, peer: str, headers):
        """One request from `peer` with these headers."""
        if "X-Forwarded-For" not in headers or _trusted(_parse(peer), self.trusted):
            return
        self.seen += 1
        self.last_peer = peer
        now = time.monotonic()
        if self._warned_at is None or now - self._warned_at >= WARN_EVERY_SECONDS:
            self._warned_at = now
            log.warning("!!! %s (peer %s, %d such requests so far; TRUSTED_PROXIES=%s). Behind a reverse proxy, set "
                        "TRUSTED_PROXIES to its address (docs/deploy.md).", UNTRUSTED_FORWARDING, peer, self.seen,
                        ",".join(map(str, self.trusted)) or "(empty)")
