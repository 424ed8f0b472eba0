"""Contract §3, personal data at rest: after a parent's whole story — login, order, payment, the 预约成功 message, a
refund and its notification, the 退款通知 message, a second order cancelled, the day's WeChat Pay bill (whose rows
name the payer) reconciled — no table holds the parent's openid in clear, while what needs it can still read it and
the back office shows the masked form."""
import logging

import pytest

from models import PaymentOrder, PaymentTransaction, User, personal_data
from tests.api import eventually
from tests.bills.books import DAYS, at, day_ago, reconcile
from tests.models.personal_data_scan import places_holding, text_columns


@pytest.fixture
def overrides():
    return {"RECONCILE_INTERVAL_SECONDS": "0.3"}


async def _messages_to(api, openid):
    return {m["data"]["phrase4"]["value"] for m in (await api.control("GET", "/sandbox/messages"))["items"]
            if m.get("touser") == openid and m.get("errcode") == 0}


@pytest.mark.gen_test(timeout=120)
async def test_a_parents_whole_story_leaves_the_openid_in_clear_in_no_table(api, settings, caplog):
    caplog.set_level(logging.DEBUG)
    day = day_ago(DAYS["personal_data"])
    sid, token, openid, order, _ = await api.order_in_payment(capacity=2)
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay",
                      {"notify": True, "success_time": at(day, "10:00:00")})

    async def paid():
        return (await api.get_order(token, order["order_id"]))["status"] == "paid"

    await eventually(paid, what="the payment notification to be applied")
    await eventually(lambda: _messages_to(api, openid), what="the 预约成功 message")  # sent to the decrypted openid
    again = await api.login(openid)
    assert again[1] == openid
    finance = await api.admin_token("finance")
    status, refund = await api.refund(finance, order["order_id"], order["amount_fen"])
    assert status == 201, refund

    async def refunded():
        return (await api.get_order(token, order["order_id"]))["status"] == "refunded"

    await eventually(refunded, timeout=20, what="the refund notification to be applied")
    async def both_messages():
        return {"预约成功", "退款成功"} <= await _messages_to(api, openid)

    await eventually(both_messages, what="the 退款通知 message")
    status, second = await api.order(again[0], sid)  # a parent refunded in full may book again
    assert status == 201, second
    assert (await api.prepay(again[0], second["order_id"]))[0] == 200
    status, cancelled, _ = await api.call("POST", f"/api/v1/payment/orders/{second['order_id']}/cancel", {},
                                          token=again[0])
    assert status == 200 and cancelled["status"] == "cancelled", cancelled

    bill = await reconcile(api, finance, day)  # its 用户标识 column is the payer's openid
    assert bill["status"] == "matched" and bill["wechat"]["payments"] == 1, bill

    # The back office and the API show the masked form, read as stored.
    masked = personal_data.mask_value(openid)
    status, story, _ = await api.call("GET", f"/api/v1/admin/orders/{order['order_id']}", token=finance)
    assert status == 200 and story["user"]["openid_masked"] == masked
    status, page, _ = await api.call("GET", f"/api/v1/admin/orders?course_schedule_id={sid}", token=finance)
    assert {o["user"]["openid_masked"] for o in page["items"]} == {masked}

    # Every text column of every table, searched for the openid (the search finds the masked form, so it sees).
    assert len(text_columns(settings.database)) > 50
    assert places_holding(settings.database, [openid]) == []
    assert "users.openid_masked: " + masked in "\n".join(places_holding(settings.database, [masked]))
    assert openid not in caplog.text  # nor in what the service logged meanwhile, at DEBUG

    # What needs the openid reads it back: the parent's row, and the payer WeChat Pay reported.
    user = await User.select().where(User.openid_hash.in_(personal_data.lookup_hashes(openid))).aio_get()
    assert personal_data.decrypt(user.openid_encrypted) == openid and user.openid_masked == masked
    paid = await PaymentOrder.select().where(PaymentOrder.order_id == order["order_id"]).aio_get()
    txn = await PaymentTransaction.select().where(PaymentTransaction.order == paid.id).aio_get()
    assert personal_data.decrypt(txn.payer_openid_encrypted) == openid
