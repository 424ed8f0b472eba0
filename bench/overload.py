"""Overload: the order flow offered at twice the capacity just measured, with WeChat Pay's notifications meanwhile.

    .venv/bin/python bench/overload.py [--overload-factor 2] [--overload-seconds 15] [--calibration-flows 400]
                                       [--calibration-workers 16] [--overload-notify-rate 10]

1. Capacity: --calibration-flows flows (order create, then prepay; a parent each), --calibration-workers at a time
   (a closed loop that keeps the service's budget full); the flows completed per second are the capacity C.
2. Overload, open loop: flow i starts at i / (factor × C) seconds for --overload-seconds, whatever happened to the
   others, each call made once (no retry: the 503 is the answer measured); meanwhile --overload-notify-rate signed
   TRANSACTION.SUCCESS notifications a second, open loop too, for orders put in payment during the setup.

Goals (issue 17): every admitted flow (201, then 200) answered within 1 s of its scheduled start (p99); every 503
within 50 ms of its request (p99); no answer other than 2xx and 503, none lost; seats and payments intact: in MySQL
an order for every 201 and none for a 503, a WeChat Pay order for every 200 and none for a prepay turned away, no
oversell, and every notification answered 204 and its payment applied once.
"""
from __future__ import annotations

import asyncio
import os
import re
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    Setup, check, common_parser, goal, headline, lat, log, per_op, run_loadgen, run_scenarios, settle,
)
from bench.notify_storm import forge  # noqa: E402
from bench.world import query  # noqa: E402

GOAL_ADMITTED_P99_MS = 1000
GOAL_SHED_P99_MS = 50


def add_options(p):
    """This scenario's options."""
    g = p.add_argument_group("overload")
    g.add_argument("--overload-factor", type=float, default=2.0, help="offered rate ÷ the measured capacity")
    g.add_argument("--overload-seconds", type=float, default=15.0, help="how long flows are offered")
    g.add_argument("--calibration-flows", type=int, default=400, help="flows of the capacity measurement")
    g.add_argument("--calibration-workers", type=int, default=16, help="flows in flight while measuring capacity")
    g.add_argument("--overload-notify-rate", type=float, default=10.0, help="notifications/s during the overload")
    g.add_argument("--overload-deadline", type=float, default=10.0, help="a call unanswered after this is lost")


async def _parents(world, args, n, title):
    setup = Setup(world, args.setup_concurrency)
    try:
        session = await setup.schedule(n + 10, title)
        parents = await setup.parents(n)
    finally:
        setup.close()
    return session, [{"token": token, "schedule_id": session} for token, _ in parents]


async def _orders_in_payment(world, args, n):
    setup = Setup(world, args.setup_concurrency)
    try:
        session = await setup.schedule(n + 10, "体验课 overload notifications")
        parents = await setup.parents(n)
        orders = await asyncio.gather(*(setup.order(token, session, prepay=True) for token, _ in parents))
    finally:
        setup.close()
    return session, forge(world, [(o, openid) for o, (_, openid) in zip(orders, parents)])


async def measure(world, args):
    """Capacity, then factor × capacity with notifications meanwhile; the goals and the database."""
    session, items = await _parents(world, args, args.calibration_flows, "体验课 overload calibration")
    log(f"overload: measuring capacity with {args.calibration_flows} flows, {args.calibration_workers} at a time")
    calibration, _ = await run_loadgen(world, "overload_calibration",
                                       {"kind": "order_flow", "mode": "closed", "workers": args.calibration_workers,
                                        "items": items, "retry_busy": True}, args)
    done = [f for f in calibration["results"] if f["codes"] == [201, 200]]
    capacity = len(done) / (calibration["elapsed_ms"] / 1000)
    rate = args.overload_factor * capacity
    n = int(rate * args.overload_seconds)
    k = int(args.overload_notify_rate * args.overload_seconds)
    log(f"overload: capacity {capacity:.1f} flows/s; offering {rate:.1f}/s for {args.overload_seconds:g}s "
        f"({n} parents), {args.overload_notify_rate:g} notifications/s ({k})")
    session, items = await _parents(world, args, n, "体验课 overload")
    paying_session, notes = await _orders_in_payment(world, args, k)
    settle(world)
    log_offset = _log_size(world)
    flows_job = run_loadgen(world, "overload", {"kind": "order_flow", "mode": "open", "rate": rate,
                                                "deadline": args.overload_deadline, "preconnect": min(200, n),
                                                "items": items}, args)
    notify_job = run_loadgen(world, "overload_notify", {"kind": "notify", "mode": "open",
                                                        "rate": args.overload_notify_rate,
                                                        "deadline": args.overload_deadline, "preconnect": 10,
                                                        "items": notes}, args)
    (result, window), (notified, _) = await asyncio.gather(flows_job, notify_job)
    settle(world)
    inside = _service_times(world, log_offset, 503)
    return _figures(world, args, capacity, rate, session, paying_session, result, window, notified, inside)


# An access-log line (telemetry/logs.py access_log, the text format the bench's service writes): status, time.
_ACCESS = re.compile(r" tornado\.access \[[^\]]*\]: (\d{3}) \S+ \S+ \(.*\) ([\d.]+)ms$")


def _log_size(world):
    try:
        return os.path.getsize(world.service.log_path)
    except OSError:
        return None


def _service_times(world, offset, status):
    """The service's own time for each answer of `status` logged after `offset`: Tornado's request time, from the
    request's first byte read to its answer written, in ms (the wait before the first byte is read is not in it)."""
    if offset is None:
        return []
    times = []
    with open(world.service.log_path, "rb") as fh:
        fh.seek(offset)
        for line in fh.read().decode("utf-8", "replace").splitlines():
            m = _ACCESS.search(line)
            if m and int(m.group(1)) == status:
                times.append(float(m.group(2)))
    return times


def _figures(world, args, capacity, rate, session, paying_session, result, window, notified, inside):
    flows = result["results"]
    answers = []  # (status, ms from the request) of every call made
    for f in flows:
        answers += list(zip(f.get("codes", ()), f.get("steps_ms", ())))
    admitted = [f for f in flows if f.get("codes") == [201, 200] and not f.get("error")]
    admitted_ms = [f["end_ms"] - f["sched_ms"] for f in admitted]
    shed_ms = [ms for status, ms in answers if status == 503]
    half = [f for f in flows if f.get("codes") == [201, 503]]
    lost = [f for f in flows if not f.get("answered") or not f.get("codes")]
    other = Counter(str(s) for s, _ in answers if not (200 <= s < 300 or s == 503))
    note_codes = Counter(str(a["codes"][0]) if a.get("codes") else str(a.get("error")) for a in notified["results"])
    note_ms = [a["end_ms"] - a["start_ms"] for a in notified["results"] if a.get("codes")]
    elapsed = result["elapsed_ms"] / 1000
    figures = {
        "capacity_flows_per_s": round(capacity, 1), "offered_per_s": round(rate, 1),
        "factor": args.overload_factor, "seconds": args.overload_seconds, "flows": len(flows),
        "codes": dict(Counter(" ".join(str(c) for c in f.get("codes", ())) or str(f.get("error")) for f in flows)),
        "admitted_flows": len(admitted), "admitted_per_s": round(len(admitted) / elapsed, 1),
        "flows_shed_at_create": sum(1 for f in flows if f.get("codes") == [503]),
        "flows_shed_at_prepay": len(half), "lost": len(lost), "answers_other_than_2xx_503": dict(other),
        "admitted_flow_ms": lat(admitted_ms), "shed_answer_ms": lat(shed_ms), "shed_inside_service_ms": lat(inside),
        "admitted_answer_ms": lat([ms for status, ms in answers if 200 <= status < 300]),
        "notifications": {"codes": dict(note_codes), "answer_ms": lat(note_ms)},
        "window": window, **per_op(window, len(admitted)),
    }
    a99, s99 = figures["admitted_flow_ms"]["p99"], figures["shed_answer_ms"]["p99"]
    n_other = sum(other.values()) + len(lost)
    figures["checks"] = [
        check(f"admitted flows p99 < {GOAL_ADMITTED_P99_MS} ms", admitted and a99 < GOAL_ADMITTED_P99_MS, a99),
        check(f"503 answers p99 < {GOAL_SHED_P99_MS} ms", s99 is not None and s99 < GOAL_SHED_P99_MS, s99),
        check("every call answered 2xx or 503", n_other == 0, f"{dict(other)}; {len(lost)} lost"),
        check("every notification meanwhile answered 204", note_codes == Counter({"204": len(notified["results"])}),
              dict(note_codes)),
    ]
    database = _database_checks(world, session, paying_session, flows, len(notified["results"]))
    figures["checks"] += database
    figures["headline"] = [
        headline("capacity", "capacity measured first (create + prepay flows/s)", round(capacity, 1), "/s", "rate"),
        headline("offered", f"offered ({args.overload_factor:g}× capacity)", round(rate, 1), "/s", "rate"),
        headline("admitted_per_s", "admitted flows completed/s", figures["admitted_per_s"], "/s", "rate"),
        headline("admitted_p99_ms", "admitted flow p99, from its scheduled start to its prepay's answer", a99, "ms",
                 goal=goal(f"< {GOAL_ADMITTED_P99_MS} ms", at_most=GOAL_ADMITTED_P99_MS)),
        headline("admitted_max_ms", "admitted flow, slowest", figures["admitted_flow_ms"]["max"], "ms"),
        headline("shed_p99_ms", "503 answer p99", s99, "ms", goal=goal(f"< {GOAL_SHED_P99_MS} ms",
                                                                        at_most=GOAL_SHED_P99_MS)),
        headline("shed_max_ms", "503 answer, slowest", figures["shed_answer_ms"]["max"], "ms",
                 goal=goal(f"< {GOAL_SHED_P99_MS} ms (\"every\")", at_most=GOAL_SHED_P99_MS)),
        headline("shed_inside_max_ms", "503 answer, slowest inside the service (its access log: first byte read to "
                 "answer written)", figures["shed_inside_service_ms"]["max"], "ms"),
        headline("shed_share_pct", "flows turned away (at create, at prepay)",
                 round(100 * (len(flows) - len(admitted)) / max(1, len(flows)), 1), "%"),
        headline("other_answers", "answers other than 2xx and 503, or none", n_other, "", goal=goal("0", at_most=0)),
        headline("database_failed", "MySQL checks failed (an order per 201 and none per 503, a prepay id per 200, "
                 "no oversell, each payment applied once)", sum(not c["ok"] for c in database), "",
                 goal=goal("0", at_most=0)),
        headline("notify_p99_ms", f"notifications meanwhile ({args.overload_notify_rate:g}/s): answer p99",
                 figures["notifications"]["answer_ms"]["p99"], "ms"),
        headline("service_cpu_ms", "service CPU per admitted flow (shed answers included)",
                 figures["cpu_ms_per_op"]["service"], "ms", "cpu"),
    ]
    log(f"overload: capacity {capacity:.1f}/s, offered {rate:.1f}/s; {len(admitted)} admitted (p99 {a99} ms), "
        f"503 p99 {s99} ms, {n_other} other; notifications {dict(note_codes)}")
    return figures


def _database_checks(world, session, paying_session, flows, notifications):
    """Nothing turned away left anything; nothing admitted was lost; no oversell; every payment applied once."""
    created = {f["order_id"] for f in flows if (f.get("codes") or [None])[0] == 201}
    prepaid = {f["order_id"] for f in flows if f.get("codes") == [201, 200]}
    rows = query(world.db_url, """SELECT o.order_id, o.status, o.prepay_id IS NOT NULL, r.status
        FROM payment_orders o LEFT JOIN seat_reservations r ON r.order_id = o.id
        WHERE o.course_schedule_id = %s""", (session,))
    in_db = {r[0] for r in rows}
    with_prepay = {r[0] for r in rows if r[2]}
    (capacity,), = query(world.db_url, "SELECT capacity FROM course_schedules WHERE id = %s", (session,))
    held = sum(1 for r in rows if r[3] in ("temporary", "confirmed"))
    paid = dict(query(world.db_url, """SELECT o.status, COUNT(*) FROM payment_orders o
        WHERE o.course_schedule_id = %s GROUP BY o.status""", (paying_session,)))
    (txns,), = query(world.db_url, """SELECT COUNT(*) FROM payment_transactions t JOIN payment_orders o
        ON o.id = t.order_id WHERE o.course_schedule_id = %s""", (paying_session,))
    return [
        check("MySQL: an order for every 201 and none for a 503", in_db == created,
              f"{len(in_db)} orders, {len(created)} answered 201; {len(in_db - created)} unexplained"),
        check("MySQL: a WeChat Pay order (prepay id) for every 200 and none for a prepay turned away",
              with_prepay == prepaid, f"{len(with_prepay)} with a prepay id, {len(prepaid)} answered 200"),
        check("MySQL: every order of the session pending with its seat held, no oversell",
              all(r[1] == "pending" and r[3] == "temporary" for r in rows) and held <= capacity,
              f"{held} held of {capacity}"),
        check(f"MySQL: the {notifications} notified orders paid, one transaction each",
              paid == {"paid": notifications} and txns == notifications, f"{paid}, {txns} transactions"),
    ]


def main():
    """This scenario alone, beside the ceiling."""
    p = common_parser(__doc__.splitlines()[0])
    add_options(p)
    return run_scenarios(p.parse_args(), [("overload", measure)], "overload")


if __name__ == "__main__":
    sys.exit(main())
