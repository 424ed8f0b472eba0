"""Values reach MySQL as values, whatever they hold: the pool's cursor (models/piggyback.py) writes NULLs and plain
ints itself and leaves everything else to PyMySQL's escaping; a hostile header or key must land verbatim, and never
as SQL (the pool's connections accept several statements in one packet)."""
import pytest

from models import IdempotencyKey, PaymentAuditLog, PaymentOrder

HOSTILE = "x'); DROP TABLE `payment_orders`; -- \\' \\\\ %s %% \"q\" ;COMMIT; `t`"


@pytest.mark.gen_test
async def test_a_hostile_user_agent_and_idempotency_key_are_stored_verbatim(api):
    sid = await api.schedule(capacity=3)
    token, _ = await api.login()
    key = "k'\\;ROLLBACK;--%s" + "'" * 20
    headers = {"User-Agent": HOSTILE, "Idempotency-Key": key}
    status, order, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid},
                                      token=token, headers=headers)
    assert status == 201, order
    row = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    created = await PaymentAuditLog.select().where((PaymentAuditLog.order == row.id)
                                                    & (PaymentAuditLog.action_type == "order_created")).aio_get()
    assert created.user_agent == HOSTILE
    assert created.user_id == row.user_id and isinstance(created.user_id, int)
    assert created.transaction_id is None and created.refund_id is None and created.operator_id is None
    stored = await IdempotencyKey.select().where(IdempotencyKey.order == row.id).aio_get()
    assert stored.idem_key == key
    # The same key again is read back through the same escaping: the same order, nothing new.
    status, again, _ = await api.call("POST", "/api/v1/payment/orders/create", {"course_schedule_id": sid},
                                      token=token, headers=headers)
    assert status == 201 and again["order_id"] == order["order_id"], again
    assert await api.remaining(sid) == 2
    assert await PaymentOrder.select().where(PaymentOrder.id == row.id).aio_count() == 1
