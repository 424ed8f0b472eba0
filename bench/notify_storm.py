"""Notification storm: 500 orders in payment, 500 signed TRANSACTION.SUCCESS notifications posted, 100 in flight.

    .venv/bin/python bench/notify_storm.py [--notifications 500] [--in-flight 100] [--redeliver 50]

The orders are made through the API (parent login, order create, prepay) during the setup. The notifications are
signed and encrypted with the sandbox's own platform key and APIv3 key (tests.forge.Forger) before the clock
starts, and posted to /api/v1/payment/wxpay/callback over keep-alive connections. Every one must be answered 204,
and MySQL must then show every order paid with exactly one transaction. After the measured storm, --redeliver of
them are posted again (as WeChat Pay redelivers; not measured): still 204, still one transaction each. Then the
bench waits for the booking notices (预约成功) the payments queued, and reports their extra CPU apart.
"""
from __future__ import annotations

import asyncio
import os
import sys
import time
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import pymysql  # noqa: E402

from tests.forge import Forger  # noqa: E402

from bench.common import (  # noqa: E402
    Setup, Window, check, common_parser, headline, lat, log, per_op, run_loadgen, run_scenarios,
)
from bench.world import query  # noqa: E402


def add_options(p):
    """This scenario's options."""
    g = p.add_argument_group("notification storm")
    g.add_argument("--notifications", type=int, default=500, help="orders in payment, one notification each")
    g.add_argument("--in-flight", type=int, default=100, help="notifications in flight at once")
    g.add_argument("--redeliver", type=int, default=50, help="notifications posted a second time afterwards")
    g.add_argument("--notice-wait", type=float, default=60.0, help="longest wait for the booking notices")


def forge(world, orders):
    """One signed, encrypted TRANSACTION.SUCCESS per (order, openid)."""
    forger = Forger(world.sandbox.state_dir, world.sandbox.env)
    items = []
    for order, openid in orders:
        body = forger.body(forger.transaction(order["order_id"], total=order["amount_fen"], openid=openid))
        items.append({"order_id": order["order_id"], "body": body.decode(), "headers": forger.headers(body)})
    return items


async def measure(world, args):
    """The storm, the redelivery, the database, the booking notices."""
    n = args.notifications
    setup = Setup(world, args.setup_concurrency)
    try:
        schedule_id = await setup.schedule(n, "体验课 notification storm")
        parents = await setup.parents(n)
        orders = await asyncio.gather(*(setup.order(token, schedule_id, prepay=True) for token, _ in parents))
    finally:
        setup.close()
    items = forge(world, [(o, openid) for o, (_, openid) in zip(orders, parents)])
    log(f"notify_storm: {n} orders in payment, {n} notifications signed; {args.in_flight} in flight")
    result, window = await run_loadgen(world, "notify_storm",
                                       {"kind": "notify", "mode": "closed", "workers": args.in_flight,
                                        "items": items}, args)
    answers = result["results"]
    codes = Counter(str(a["codes"][0]) if a["codes"] else str(a.get("error")) for a in answers)
    elapsed = result["elapsed_ms"] / 1000
    rate = n / elapsed
    figures = {"notifications": n, "in_flight": args.in_flight, "codes": dict(codes), "elapsed_s": round(elapsed, 2),
               "notifications_per_s": round(rate, 1), "answer_ms": lat([a["end_ms"] - a["start_ms"] for a in answers]),
               "window": window, **per_op(window, n)}

    notices = _notices(world)
    pending_at_end = notices.get("pending", 0)
    t0, notice_window = time.monotonic(), Window(world).start()
    while notices.get("pending", 0) and time.monotonic() - t0 < args.notice_wait:
        await asyncio.sleep(0.5)
        notices = _notices(world)
    after = notice_window.stop()
    figures["booking_notices"] = {
        "pending_when_the_storm_ended": pending_at_end, "status": notices, "drain_s": round(time.monotonic() - t0, 1),
        "service_cpu_ms_per_notice_sent_after": round(1000 * after["cpu_seconds"]["service"] / pending_at_end, 2)
        if pending_at_end else None, "window": after}

    again = items[:args.redeliver]
    if again:
        redelivered, _ = await run_loadgen(world, "notify_redeliver",
                                           {"kind": "notify", "mode": "closed", "workers": min(args.in_flight,
                                                                                               len(again)),
                                            "items": again}, args)
        figures["redelivered_codes"] = dict(Counter(str(a["codes"][0]) if a["codes"] else str(a.get("error"))
                                                    for a in redelivered["results"]))
    cpu = figures["cpu_ms_per_op"]
    figures["headline"] = [
        headline("notifications_per_s", f"notifications/s, {args.in_flight} in flight", rate, "/s", "rate"),
        headline("p50_ms", "answer latency p50", figures["answer_ms"]["p50"], "ms"),
        headline("p99_ms", "answer latency p99", figures["answer_ms"]["p99"], "ms"),
        headline("service_cpu_ms", "service CPU per notification", cpu["service"], "ms", "cpu"),
        headline("mariadb_cpu_ms", "MariaDB CPU per notification", cpu.get("mariadb"), "ms", "cpu"),
        headline("notices_pending", "booking notices still pending when the storm ended", pending_at_end, ""),
    ]
    db = _database(world, schedule_id)
    figures["database"] = db
    figures["checks"] = [
        check(f"all {n} notifications answered 204", codes == Counter({"204": n}), dict(codes)),
        check("every redelivery answered 204", figures.get("redelivered_codes", {"204": 0}) == {"204": len(again)}
              or not again, figures.get("redelivered_codes")),
        check(f"MySQL: {n} paid orders with confirmed seats", db["orders"] == {"paid": n}
              and db["reservations"] == {"confirmed": n}, db),
        check(f"MySQL: {n} transactions, one per order", db["transactions"] == n and not db["duplicate_transactions"],
              db),
    ]
    log(f"notify_storm: {rate:.1f} notifications/s, service {cpu['service']:.1f} ms CPU each; {dict(codes)}")
    return figures


def _notices(world):
    """Booking notices by status ({} when this checkout keeps them elsewhere: not in the contract)."""
    return optional(world, "SELECT status, COUNT(*) FROM booking_notices GROUP BY status")


def optional(world, sql):
    """{key: count} from a table outside the contract's storage section, or {} if this checkout has none."""
    try:
        return {k: int(v) for k, v in query(world.db_url, sql)}
    except pymysql.MySQLError:
        return {}


def _database(world, schedule_id):
    def grouped(sql):
        return {k: v for k, v in query(world.db_url, sql, (schedule_id,))}

    (txns,), = query(world.db_url, """SELECT COUNT(*) FROM payment_transactions t JOIN payment_orders o
                                      ON o.id = t.order_id WHERE o.course_schedule_id = %s""", (schedule_id,))
    dup = query(world.db_url, "SELECT order_id, COUNT(*) FROM payment_transactions GROUP BY order_id HAVING COUNT(*) > 1")
    return {"orders": grouped("SELECT status, COUNT(*) FROM payment_orders WHERE course_schedule_id = %s GROUP BY 1"),
            "reservations": grouped("SELECT status, COUNT(*) FROM seat_reservations WHERE course_schedule_id = %s "
                                    "GROUP BY 1"),
            "transactions": txns, "duplicate_transactions": [list(r) for r in dup[:5]],
            "receipts (not in the contract)": optional(world, "SELECT outcome, COUNT(*) FROM wechatpay_notifications "
                                                              "GROUP BY 1")}


def main():
    """This scenario alone, beside the ceiling."""
    p = common_parser(__doc__.splitlines()[0])
    add_options(p)
    return run_scenarios(p.parse_args(), [("notify_storm", measure)], "notify_storm")


if __name__ == "__main__":
    sys.exit(main())
