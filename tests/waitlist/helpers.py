"""Steps the waitlist tests share: a full session with its holder, parents in line, the line as the API shows it."""
from __future__ import annotations

import datetime as dt

from models import SubscribeMessage, WaitlistEntry
from tests.api import eventually


async def join(api, token, schedule_id):
    """POST /api/v1/waitlist; (status, body)."""
    status, body, _ = await api.call("POST", "/api/v1/waitlist", {"course_schedule_id": schedule_id}, token=token)
    return status, body


async def leave(api, token, entry_id):
    """DELETE /api/v1/waitlist/{id}; (status, body)."""
    status, body, _ = await api.call("DELETE", f"/api/v1/waitlist/{entry_id}", token=token)
    return status, body


async def entries(api, token) -> list:
    """The caller's entries (GET /api/v1/waitlist)."""
    status, body, _ = await api.call("GET", "/api/v1/waitlist", token=token)
    assert status == 200, body
    return body["items"]


async def entry(api, token, entry_id) -> dict:
    """One of the caller's entries as the API shows it now."""
    [found] = [e for e in await entries(api, token) if e["id"] == entry_id]
    return found


async def cancel(api, token, order_id, reason="user_cancelled"):
    """The parent cancels their order; the order as it now stands."""
    status, body, _ = await api.call("POST", f"/api/v1/payment/orders/{order_id}/cancel", {"reason": reason},
                                     token=token)
    assert status == 200, body
    return body


async def full_session(api, capacity=1, title="候补测试课", starts_in_days=3):
    """A session whose seats are all held by parents of their own: (schedule id, [(token, order id)])."""
    sid = await api.schedule(capacity=capacity, title=title, starts_in_days=starts_in_days)
    holders = []
    for _ in range(capacity):
        token, _ = await api.login()
        status, order = await api.order(token, sid)
        assert status == 201, order
        holders.append((token, order["order_id"]))
    return sid, holders


async def in_line(api, sid, n):
    """n new parents on the session's waitlist, in order: [(token, openid, entry)]."""
    line = []
    for _ in range(n):
        token, openid = await api.login()
        status, body = await join(api, token, sid)
        assert status == 201, body
        line.append((token, openid, body))
    return line


async def offered(api, token, entry_id, timeout=10.0) -> dict:
    """Wait until the entry is offered; the entry."""
    async def check():
        found = await entry(api, token, entry_id)
        return found if found["status"] == "offered" else None

    return await eventually(check, timeout=timeout, what=f"waitlist entry {entry_id} to be offered")


async def statuses(sid) -> list:
    """The session's entries' statuses, first in line first, read from MySQL."""
    return [e.status for e in await WaitlistEntry.select().where(WaitlistEntry.course_schedule == sid)
            .order_by(WaitlistEntry.id).aio_execute()]


async def offer_messages(entry_ids) -> list:
    """The 候补成功 rows queued for these entries."""
    return list(await SubscribeMessage.select().where(SubscribeMessage.waitlist_entry.in_(list(entry_ids)))
                .aio_execute())


async def sandbox_messages(api, openid) -> list:
    """The subscribe messages WeChat (the sandbox) received for this parent."""
    return [m for m in (await api.control("GET", "/sandbox/messages"))["items"] if m.get("touser") == openid]


def parse(iso):
    """An API time as an aware datetime."""
    return dt.datetime.fromisoformat(iso)
