"""Retention (contract §1 PERSONAL_DATA_RETENTION_DAYS): the client addresses, user agents and request snapshots of
the audit rows are erased after that many days, and every seal still verifies; an erasure the retention job did not
make (by hand, or of a row too young) still shows."""
from __future__ import annotations

import json

import pytest

from tests.api import eventually
from tests.audit_trail.conftest import execute, rows, verdict, verify_cli

PERSONAL = ("ip_address", "user_agent", "request_data", "response_data")


async def personal_rows():
    """The ids of the audit rows that hold a personal part."""
    found = await rows("SELECT id FROM payment_audit_log WHERE " + " OR ".join(f"{c} IS NOT NULL" for c in PERSONAL))
    return {r["id"] for r in found}


async def all_sealed(api, token):
    top = (await rows("SELECT MAX(id) AS top FROM payment_audit_log"))[0]["top"]

    async def sealed():
        found = await verdict(api, token)
        return found if found["sealed_through"] and found["sealed_through"] >= top else None

    return await eventually(sealed, timeout=15, what="every audit row to be sealed")


@pytest.mark.gen_test(timeout=180)
async def test_erasure_after_the_retention_period_keeps_every_seal_valid(trail_env, services, client):
    first = services(trail_env, name="keeps")
    api = client(first)
    token = await api.admin_token("finance")
    sid, _, _, order = await api.paid_order()
    parent, _ = await api.login()
    status, _ = await api.order(parent, sid, amount="0.01")  # refused and audited with the client's address
    assert status == 422
    await api.refund(token, order["order_id"], 5000)
    await all_sealed(api, token)
    held = await personal_rows()
    assert held, "the story left client addresses, user agents and snapshots in the audit rows"
    amount = (await rows("SELECT id, ip_address, request_data FROM payment_audit_log "
                         "WHERE action_type = 'amount_mismatch'"))[0]
    assert amount["ip_address"] == "127.0.0.1" and amount["request_data"]
    # What WeChat Pay's notification carried is kept in the audit rows written for it (the inbox holds none).
    notified = await rows("SELECT id FROM payment_audit_log WHERE actor = 'wechat' AND request_data IS NOT NULL")
    assert notified and {r["id"] for r in notified} <= held
    first.stop()

    # A service whose retention is 0 days: at its start the job erases the personal parts of every sealed row.
    api = client(services({**trail_env, "PERSONAL_DATA_RETENTION_DAYS": "0"}, name="erases"))

    async def erased():
        return not (await personal_rows()) & held

    await eventually(erased, timeout=15, what="the personal parts to be erased")
    covers = await rows("SELECT id, action_detail, actor, entity FROM payment_audit_log "
                        "WHERE action_type = 'personal_data_erased' ORDER BY id")
    assert covers and all((c["actor"], c["entity"]) == ("system", "audit") for c in covers)
    assert sum(json.loads(c["action_detail"])["rows"] for c in covers) >= len(held)
    kept = (await rows("SELECT order_id, action_type, new_status, created_at FROM payment_audit_log "
                       "WHERE id = %s", (amount["id"],)))[0]
    assert kept["action_type"] == "amount_mismatch" and kept["created_at"]  # what happened stays, who it was goes

    found = await all_sealed(api, token)
    assert found["ok"] and found["first_bad_id"] is None, found
    code, by_cli = verify_cli(trail_env)
    assert code == 0 and by_cli["ok"]

    # The control: the same erasure by hand, of a row the job has not covered (written after its run), shows.
    parent, _ = await api.login()
    assert (await api.order(parent, sid, amount="0.02"))[0] == 422
    await all_sealed(api, token)
    young = (await rows("SELECT MAX(id) AS id FROM payment_audit_log WHERE action_type = 'amount_mismatch'"))[0]["id"]
    assert young not in held and young > max(c["id"] for c in covers)
    await execute("UPDATE payment_audit_log SET ip_address = NULL, user_agent = NULL, request_data = NULL, "
                  "response_data = NULL WHERE id = %s", (young,))
    found = await verdict(api, token)
    assert (found["ok"], found["first_bad_id"]) == (False, young)
    code, by_cli = verify_cli(trail_env)
    assert code == 1 and by_cli == found
