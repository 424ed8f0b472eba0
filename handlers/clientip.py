"""The client's address: the socket peer, or, behind a trusted proxy, the right-most untrusted X-Forwarded-For hop."""
from __future__ import annotations

import ipaddress


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
