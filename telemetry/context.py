"""What a log line, an audit row and an outgoing call know about the work in hand: the request id and the order."""
from __future__ import annotations

import contextvars
import re
import uuid

request_id_var = contextvars.ContextVar("request_id", default=None)
order_id_var = contextvars.ContextVar("order_id", default=None)

_ACCEPTED = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def request_id_for(offered: str | None) -> str:
    """The request's own id when it is well formed (contract §2 Operations), else a new one."""
    if offered and _ACCEPTED.match(offered):
        return offered
    return uuid.uuid4().hex


def bind_request(offered: str | None) -> str:
    """Start serving a request: its id (for logs, audit rows and calls made on its behalf) is set and returned."""
    rid = request_id_for(offered)
    request_id_var.set(rid)
    if order_id_var.get() is not None:  # setting it anyway would grow the context a WebSocket keeps for its life
        order_id_var.set(None)
    return rid


def bind_order(order_id: str | None):
    """The order now being worked on (its public id), for the log lines that follow."""
    order_id_var.set(order_id)


def current_request_id() -> str | None:
    """The id of the request being served, if any."""
    return request_id_var.get()


def new_job_context(name: str) -> str:
    """A fresh id for a background job's round (the reconciler, the message sender)."""
    rid = f"{name}-{uuid.uuid4().hex[:12]}"
    request_id_var.set(rid)
    order_id_var.set(None)
    return rid


async def tag_outgoing(request):
    """An httpx request hook: outgoing calls carry the id of the request (or job round) they serve, X-Request-ID."""
    rid = request_id_var.get()
    if rid:
        request.headers["X-Request-ID"] = rid

