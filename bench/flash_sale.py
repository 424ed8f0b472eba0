"""Flash sale: 1,000 parents, logged in beforehand, released together on one session of 20 seats.

    .venv/bin/python bench/flash_sale.py [--parents 1000] [--seats 20]

Each parent has a keep-alive connection open before the clock starts; at the go all send their order create at
once, and, as the mini-program does, send it again after Retry-After when admission control turns it away (503).
Exactly --seats must get 201 and every other one 409 SOLD_OUT, and MySQL must hold exactly --seats live orders and
seat holds for the session.
"""
from __future__ import annotations

import os
import sys
from collections import Counter

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench.common import (  # noqa: E402
    Setup, check, common_parser, headline, lat, log, per_op, run_loadgen, run_scenarios,
)
from bench.world import query  # noqa: E402


def add_options(p):
    """This scenario's options."""
    g = p.add_argument_group("flash sale")
    g.add_argument("--parents", type=int, default=1000, help="parents released together")
    g.add_argument("--seats", type=int, default=20, help="seats of the session")


async def measure(world, args):
    """All parents at once on one session; time to the last answer."""
    n, seats = args.parents, args.seats
    setup = Setup(world, args.setup_concurrency)
    try:
        schedule_id = await setup.schedule(seats, "体验课 flash sale")
        parents = await setup.parents(n)
    finally:
        setup.close()
    log(f"flash_sale: {n} parents logged in, {seats} seats; releasing them together")
    items = [{"token": token, "schedule_id": schedule_id} for token, _ in parents]
    result, window = await run_loadgen(world, "flash_sale",
                                       {"kind": "order_create", "mode": "closed", "workers": n, "items": items,
                                        "retry_busy": True},
                                       args)
    answers = result["results"]
    codes = Counter(f"{a['codes'][0] if a['codes'] else 'none'} {a.get('error') or ''}".strip() for a in answers)
    won = [a for a in answers if a["codes"] == [201]]
    sold_out = [a for a in answers if a["codes"] == [409] and a.get("error") == "SOLD_OUT"]
    last = max(a["end_ms"] for a in answers) / 1000
    last_win = max((a["end_ms"] for a in won), default=0) / 1000
    figures = {"parents": n, "seats": seats, "codes": dict(codes), "last_answer_s": round(last, 3),
               "last_201_s": round(last_win, 3), "answers_per_s": round(n / last, 1),
               "rejections_per_s": round(len(sold_out) / last, 1),
               "busy_503_sent_again": sum(a.get("busy", 0) for a in answers),
               "answer_ms": lat([a["end_ms"] - a["start_ms"] for a in answers]),
               "window": window, **per_op(window, n)}
    cpu = figures["cpu_ms_per_op"]
    figures["headline"] = [
        headline("last_answer_s", f"{n} parents, {seats} seats: last answer after", last, "s"),
        headline("answers_per_s", "answers/s", figures["answers_per_s"], "/s", "rate"),
        headline("rejections_per_s", "SOLD_OUT rejections/s", figures["rejections_per_s"], "/s", "rate"),
        headline("service_cpu_ms", "service CPU per answer", cpu["service"], "ms", "cpu"),
        headline("busy", "503 answers sent again after Retry-After", figures["busy_503_sent_again"], ""),
    ]
    (held,), = query(world.db_url, """SELECT COUNT(*) FROM seat_reservations WHERE course_schedule_id = %s
                                      AND status IN ('temporary', 'confirmed')""", (schedule_id,))
    (orders,), = query(world.db_url, "SELECT COUNT(*) FROM payment_orders WHERE course_schedule_id = %s",
                       (schedule_id,))
    figures["checks"] = [
        check(f"exactly {seats} answered 201", len(won) == seats, dict(codes)),
        check("every other answer 409 SOLD_OUT", len(sold_out) == n - seats, dict(codes)),
        check(f"MySQL: exactly {seats} orders and seat holds for the session (no oversell)",
              held == seats and orders == seats, f"{orders} orders, {held} holds"),
    ]
    log(f"flash_sale: {dict(codes)}; last answer after {last:.2f}s")
    return figures


def main():
    """This scenario alone, beside the ceiling."""
    p = common_parser(__doc__.splitlines()[0])
    add_options(p)
    return run_scenarios(p.parse_args(), [("flash_sale", measure)], "flash_sale")


if __name__ == "__main__":
    sys.exit(main())
