"""orders.csv and refunds.csv opened and parsed back as an accountant's spreadsheet would: the BOM, the header, yuan,
+08:00 times, a session title and a refund reason that start a formula shown as text, the rows of more than one
batch each once, streamed (chunked), the range rules and the roles."""
from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import logging
import socket
import struct

import pytest

from models import PaymentOrder, Refund
from services.bills import exports
from services.formats import day_bounds
from tests.api import eventually
from tests.bills.books import today

BOM = "\ufeff"
ORDER_COLUMNS = {"order_id", "status", "amount", "created_at", "paid_at", "transaction_id", "refunded", "session",
                 "starts_at"}
REFUND_COLUMNS = {"out_refund_no", "order_id", "status", "amount", "created_at", "success_time", "operator"}


def parse(body: bytes):
    """(header, rows as dicts) of a CSV export, which must start with a UTF-8 BOM."""
    text = body.decode("utf-8")
    assert text.startswith(BOM), "a UTF-8 BOM first, so that a spreadsheet reads the Chinese right"
    lines = list(csv.reader(io.StringIO(text[1:], newline="")))
    header = lines[0]
    return header, [dict(zip(header, line)) for line in lines[1:]]


async def _export(api, token, kind, **query):
    status, body, headers = await api.call("GET", f"/api/v1/admin/exports/{kind}.csv?" + "&".join(
        f"{k}={v}" for k, v in query.items()), token=token)
    return status, body, headers


@pytest.mark.gen_test(timeout=120)
async def test_exports_parse_back_with_formulas_neutralised(api):
    admin = await api.admin_token("admin")
    finance = await api.admin_token("finance")
    title = '=HYPERLINK("http://evil.example","点这里")'
    starts = (dt.datetime.now(dt.timezone.utc) + dt.timedelta(days=3)).isoformat()
    status, schedule, _ = await api.call("POST", "/api/v1/admin/schedules", {"title": title, "starts_at": starts,
                                                                            "capacity": 3}, token=admin)
    assert status == 201
    token, _ = await api.login()
    status, order = await api.order(token, schedule["id"])
    assert status == 201 and (await api.prepay(token, order["order_id"]))[0] == 200
    await api.control("POST", f"/sandbox/orders/{order['order_id']}/pay", {"notify": True})

    async def paid():
        return (await api.get_order(token, order["order_id"]))["status"] == "paid"

    await eventually(paid, what="the payment")
    status, refund = await api.refund(finance, order["order_id"], 5000, reason="+SUM(A1:A9)")
    assert status == 201

    async def settled():
        return (await Refund.select().where(Refund.out_refund_no == refund["out_refund_no"]).aio_get()).status \
            == "SUCCESS"

    await eventually(settled, what="the refund")

    day = today().isoformat()
    status, body, headers = await _export(api, finance, "orders", **{"from": day, "to": day})
    assert status == 200 and headers["Content-Type"] == "text/csv; charset=utf-8"
    assert 'filename="orders.csv"' in headers["Content-Disposition"]
    header, rows = parse(body)
    assert ORDER_COLUMNS <= set(header)
    [row] = [r for r in rows if r["order_id"] == order["order_id"]]
    assert row["session"] == "'" + title, "a title starting with = is text"
    assert (row["status"], row["amount"], row["refunded"]) == ("paid", "200.00", "50.00")
    view = await api.get_order(token, order["order_id"])
    assert row["created_at"] == view["created_at"] and row["paid_at"] == view["paid_at"]
    assert row["created_at"].endswith("+08:00") and row["starts_at"].endswith("+08:00")
    assert row["transaction_id"] == view["transaction_id"]

    status, body, _ = await _export(api, finance, "refunds", **{"from": day, "to": day})
    assert status == 200
    header, rows = parse(body)
    assert REFUND_COLUMNS <= set(header)
    [row] = [r for r in rows if r["out_refund_no"] == refund["out_refund_no"]]
    assert (row["order_id"], row["status"], row["amount"], row["reason"]) == (order["order_id"], "SUCCESS", "50.00",
                                                                              "'+SUM(A1:A9)")
    assert row["operator"].startswith("op-finance-") and row["success_time"].endswith("+08:00")


@pytest.mark.gen_test(timeout=180)
async def test_an_export_of_more_than_a_batch_is_streamed_and_complete(api):
    sid = await api.schedule(capacity=exports.BATCH + 50)

    async def one():
        token, _ = await api.login()
        status, order = await api.order(token, sid)
        assert status == 201
        return token, order["order_id"]

    made = []
    for _ in range(0, exports.BATCH + 5, 25):
        made += await asyncio.gather(*[one() for _ in range(25)])
    finance = await api.admin_token("finance")
    day = today().isoformat()
    status, body, headers = await _export(api, finance, "orders", **{"from": day, "to": day})
    assert status == 200
    assert headers.get("Transfer-Encoding") == "chunked" and "Content-Length" not in headers, "streamed"
    _, rows = parse(body)
    ids = [r["order_id"] for r in rows]
    assert len(ids) == len(set(ids)) and {no for _, no in made} <= set(ids), "every order once, across batches"
    start, end = day_bounds(today())
    assert len(ids) == await PaymentOrder.select().where(
        (PaymentOrder.created_at >= start) & (PaymentOrder.created_at < end)).aio_count()
    assert len(ids) > exports.BATCH
    for first in range(0, len(made), 25):  # the holds go back (the session's other tests meet no crowd of them)
        answers = await asyncio.gather(*[api.call("POST", f"/api/v1/payment/orders/{no}/cancel", {}, token=token)
                                         for token, no in made[first:first + 25]])
        assert all(status == 200 for status, _, _ in answers)


@pytest.mark.gen_test(timeout=60)
async def test_export_ranges_and_roles(api):
    finance, staff = await api.admin_token("finance"), await api.admin_token("staff")
    day = today()
    for query in ({"from": "2026-13-01"}, {"from": "yesterday"}, {"to": "2026-02-30"},
                  {"from": day.isoformat(), "to": (day - dt.timedelta(days=1)).isoformat()},
                  {"from": (day - dt.timedelta(days=366)).isoformat(), "to": day.isoformat()}):
        for kind in ("orders", "refunds"):
            status, body, _ = await _export(api, finance, kind, **query)
            assert status == 400 and body["error"]["code"] == "INVALID_REQUEST", (kind, query)
    status, _, _ = await _export(api, finance, "orders", **{"from": (day - dt.timedelta(days=365)).isoformat(),
                                                            "to": day.isoformat()})
    assert status == 200, "366 days, `to` included, is the most"
    status, body, _ = await _export(api, finance, "refunds")
    assert status == 200 and body.startswith(BOM.encode()), "no range: today"
    for kind in ("orders", "refunds"):
        status, body, _ = await _export(api, staff, kind)
        assert status == 403 and body["error"]["code"] == "FORBIDDEN"
        status, body, _ = await api.call("GET", f"/api/v1/admin/exports/{kind}.csv")
        assert status == 401 and body["error"]["code"] == "UNAUTHENTICATED"


@pytest.mark.gen_test(timeout=60)
async def test_a_client_hanging_up_mid_export_is_not_an_error(api, base_url, caplog):
    """A download cancelled half way (the socket reset under the answer) ends the export quietly: nothing at ERROR,
    and the service goes on answering exports."""
    finance = await api.admin_token("finance")
    day = today().isoformat()
    host, port = base_url.split("//", 1)[1].split(":")
    path = f"/api/v1/admin/exports/orders.csv?from={day}&to={day}"
    with caplog.at_level(logging.INFO):
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {finance}\r\n\r\n".encode())
        await writer.drain()
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))  # close with a reset
        writer.close()
        await eventually(lambda: [r for r in caplog.records if "exports/orders.csv" in r.getMessage()],
                         what="the export's end (quiet or not) logged")
        status, body, _ = await _export(api, finance, "orders", **{"from": day, "to": day})
        assert status == 200 and body.startswith(BOM.encode())
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []
