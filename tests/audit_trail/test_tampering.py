"""Tampering with the audit table by SQL, behind the service's back, is found by both verifiers (contract §2: the
API's `GET /api/v1/admin/audit/verify` and `python manage.py verify-audit`), which name the first bad row; a row put
back exactly verifies again."""
from __future__ import annotations

import pytest

from tests.api import eventually
from tests.audit_trail.conftest import execute, rows, verdict, verify_cli
from tests.backoffice.test_backoffice_pages import logged_in

COLUMNS = ("id", "order_id", "transaction_id", "refund_id", "user_id", "operator_id", "actor", "action_type",
           "action_detail", "entity", "old_status", "new_status", "ip_address", "user_agent", "request_data",
           "response_data", "error_message", "request_id", "created_at", "personal_digest", "seal")


async def audit_row(row_id) -> dict:
    found = await rows(f"SELECT {', '.join(COLUMNS)} FROM payment_audit_log WHERE id = %s", (row_id,))
    return found[0]


async def put_back(row: dict):
    """Insert a removed row again exactly as it was."""
    await execute(f"INSERT INTO payment_audit_log ({', '.join(COLUMNS)}) VALUES ({', '.join(['%s'] * len(COLUMNS))})",
                  tuple(row[c] for c in COLUMNS))


async def sealed_story(api, token):
    """A parent's paid order and an operator's changes, every row of them sealed; the ids of the sealed rows."""
    await api.paid_order()
    await api.schedule()
    top = (await rows("SELECT MAX(id) AS top FROM payment_audit_log"))[0]["top"]

    async def sealed():
        found = await verdict(api, token)
        return found if found["sealed_through"] and found["sealed_through"] >= top else None

    found = await eventually(sealed, timeout=15, what="every audit row to be sealed")
    assert found["ok"] and found["first_bad_id"] is None, found
    return [r["id"] for r in await rows("SELECT id FROM payment_audit_log WHERE seal IS NOT NULL ORDER BY id")]


async def gauge(api, name) -> float:
    """A gauge's value on the service's /metrics (the alerts' input)."""
    status, text, _ = await api.call("GET", "/metrics")
    assert status == 200
    values = [line.split()[-1] for line in text.decode().splitlines() if line.startswith(name + " ")]
    assert values, f"{name} is not on /metrics"
    return float(values[0])


async def both_say(api, token, env, ok, first_bad_id):
    """The API and the command give the same verdict: ok or not, and the first bad row."""
    by_api = await verdict(api, token)
    code, by_cli = verify_cli(env)
    assert by_api == by_cli, (by_api, by_cli)
    assert (by_api["ok"], by_api["first_bad_id"]) == (ok, first_bad_id), by_api
    assert code == (0 if ok else 1)
    return by_api


@pytest.mark.gen_test(timeout=180)
async def test_a_changed_row_is_named_by_both_verifiers_and_verifies_again_once_put_back(
        trail_env, services, client):
    api = client(services(trail_env))
    token = await api.admin_token("finance")
    ids = await sealed_story(api, token)
    intact = await both_say(api, token, trail_env, True, None)
    assert intact["checked"] == len(ids) and intact["sealed_through"] == ids[-1]

    target = ids[len(ids) // 2]
    row = await audit_row(target)
    for column, forged in (("new_status", "refunded"), ("action_type", "order_cancelled"), ("created_at", None),
                           ("ip_address", "10.9.8.7"), ("request_data", '{"amount": "0.01"}'), ("actor", "system")):
        value = forged if column != "created_at" else row["created_at"].replace(year=row["created_at"].year - 1)
        assert await execute(f"UPDATE payment_audit_log SET {column} = %s WHERE id = %s", (value, target)) == 1
        broken = await both_say(api, token, trail_env, False, target)
        assert broken["checked"] == len(ids) - 1  # the rows after it still chain to its stored seal
        assert await gauge(api, "gym_audit_verify_ok") == 0  # what GymAuditTrailBroken fires on
        await execute(f"UPDATE payment_audit_log SET {column} = %s WHERE id = %s", (row[column], target))
        await both_say(api, token, trail_env, True, None)
        assert await gauge(api, "gym_audit_verify_ok") == 1
    assert await gauge(api, "gym_audit_seal_lag_seconds") == 0  # every row sealed

    # A seal cannot be brought from elsewhere (here: another row's, moved onto this one), nor be taken away.
    other = ids[1]
    own_seal = (await audit_row(other))["seal"]
    await execute("UPDATE payment_audit_log SET seal = %s WHERE id = %s", (row["seal"], other))
    await both_say(api, token, trail_env, False, other)
    await execute("UPDATE payment_audit_log SET seal = NULL WHERE id = %s", (other,))
    await both_say(api, token, trail_env, False, other)  # an unsealed row among the sealed ones
    await execute("UPDATE payment_audit_log SET seal = %s WHERE id = %s", (own_seal, other))
    await both_say(api, token, trail_env, True, None)


@pytest.mark.gen_test(timeout=180)
async def test_a_removed_row_is_named_by_the_row_after_it_and_an_inserted_row_by_itself(trail_env, services, client):
    api = client(services(trail_env))
    token = await api.admin_token("admin")
    ids = await sealed_story(api, token)

    middle = ids[len(ids) // 2]
    row = await audit_row(middle)
    await execute("DELETE FROM payment_audit_log WHERE id = %s", (middle,))
    await both_say(api, token, trail_env, False, ids[ids.index(middle) + 1])
    await put_back(row)
    await both_say(api, token, trail_env, True, None)

    # The first row (nothing before it but the genesis) and the last (nothing after it: the head names it).
    first, last = await audit_row(ids[0]), await audit_row(ids[-1])
    await execute("DELETE FROM payment_audit_log WHERE id = %s", (ids[0],))
    await both_say(api, token, trail_env, False, ids[1])
    await put_back(first)
    await execute("DELETE FROM payment_audit_log WHERE id = %s", (ids[-1],))
    named = await both_say(api, token, trail_env, False, ids[-1])
    assert named["sealed_through"] == ids[-1]
    await put_back(last)
    await both_say(api, token, trail_env, True, None)

    # Inserted among the sealed rows: into a gap a rolled-back insert left (ids may have gaps), unsealed or with a
    # seal copied from a genuine row.
    await execute("DELETE FROM payment_audit_log WHERE id = %s", (middle,))
    forged = {**row, "new_status": "paid", "seal": None, "personal_digest": None}
    await put_back(forged)
    await both_say(api, token, trail_env, False, middle)
    await execute("UPDATE payment_audit_log SET seal = %s, personal_digest = %s WHERE id = %s",
                  (row["seal"], row["personal_digest"], middle))
    await both_say(api, token, trail_env, False, middle)
    await execute("DELETE FROM payment_audit_log WHERE id = %s", (middle,))
    await put_back(row)
    await both_say(api, token, trail_env, True, None)


@pytest.mark.gen_test(timeout=180)
async def test_the_tail_cut_with_the_head_rewound_shows_against_the_daily_checkpoint(trail_env, services, client,
                                                                                    tmp_path):
    first = services(trail_env, name="before-checkpoint")
    api = client(first)
    token = await api.admin_token("finance")
    ids = await sealed_story(api, token)
    first.stop()
    # The next start writes today's checkpoint (the head as it stands) in a directory of its own.
    env = {**trail_env, "AUDIT_CHECKPOINT_DIR": str(tmp_path / "fresh-checkpoints")}
    api = client(services(env, name="with-checkpoint"))

    def written():
        files = list((tmp_path / "fresh-checkpoints").glob("*.json"))
        return files[0] if files else None

    checkpoint = await eventually(written, what="the daily checkpoint")
    assert f'"through_id": {ids[-1]}' in checkpoint.read_text()
    head = (await rows("SELECT through_id, seal, sealed_count FROM audit_seal_head WHERE id = 1"))[0]
    assert head["through_id"] == ids[-1]

    # Someone removes the last two rows and moves the head back onto the row before them: the chain that is left
    # is whole, and only the checkpoint, kept outside the database, knows better.
    cut = [await audit_row(i) for i in ids[-2:]]
    kept = await audit_row(ids[-3])
    saved_head = dict(head)
    await execute("DELETE FROM payment_audit_log WHERE id IN (%s, %s)", (ids[-2], ids[-1]))
    await execute("UPDATE audit_seal_head SET through_id = %s, seal = %s, sealed_count = sealed_count - 2 WHERE id = 1",
                  (ids[-3], kept["seal"]))
    code, blind = verify_cli(env, AUDIT_CHECKPOINT_DIR=str(tmp_path / "no-checkpoints"))
    assert (code, blind["ok"]) == (0, True)  # the control: without the checkpoint the cut does not show
    await both_say(api, token, env, False, ids[-1])
    for row in cut:
        await put_back(row)
    await execute("UPDATE audit_seal_head SET through_id = %s, seal = %s, sealed_count = %s WHERE id = 1",
                  (saved_head["through_id"], saved_head["seal"], saved_head["sealed_count"]))
    await both_say(api, token, env, True, None)


@pytest.mark.gen_test(timeout=120)
async def test_the_back_office_shows_the_verdict(trail_env, services, client):
    api = client(services(trail_env))
    token = await api.admin_token("finance")
    ids = await sealed_story(api, token)
    browser, _ = await logged_in(api.base_url, "finance")
    page = await browser.get("/admin/audit")
    assert page.status == 200 and 'data-verify="ok"' in page.text and "审计链校验通过" in page.text
    await execute("UPDATE payment_audit_log SET old_status = 'paid' WHERE id = %s", (ids[2],))
    page = await browser.get("/admin/audit")
    assert 'data-verify="failed"' in page.text and f'id="first-bad-id">{ids[2]}</span>' in page.text
    staff, _ = await logged_in(api.base_url, "staff")
    assert (await staff.get("/admin/audit")).status == 403
