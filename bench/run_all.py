"""The whole benchmark suite: the ceiling, then every scenario in a world of its own (`make bench`).

    .venv/bin/python bench/run_all.py [--service-root PATH] [--workers N] [--only a,b] [--repeat N] [--fanout-full]

Scenarios, in this order: order_closed, order_open (bench/order_flow.py), overload (bench/overload.py: twice the
capacity, admission control's goals), flash_sale, notify_storm, ws_fanout (1,000 subscribers here; --fanout-full
for the 5,000 of bench/ws_fanout.py), ws_idle (bench/ws_idle.py, 2,000 sockets unless --idle-sockets: memory per idle
socket beside a bare Tornado one, and the push after the 204 at 2,000 sockets, each beside its goal),
reconnect_storm. Each one's options
scale it (see --help); each is also runnable alone from its own file. With --repeat N the suite runs N times (a
figures file each) and ends with the median of every figure. Exits 1 when any correctness check failed.
"""
from __future__ import annotations

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import flash_sale, notify_storm, order_flow, overload, reconnect_storm, ws_fanout, ws_idle  # noqa: E402
from bench.common import common_parser, run_scenarios  # noqa: E402
from bench.report import render_medians  # noqa: E402
from bench.world import log  # noqa: E402

SCENARIOS = [("order_closed", order_flow.measure_closed), ("order_open", order_flow.measure_open),
             ("overload", overload.measure), ("flash_sale", flash_sale.measure), ("notify_storm", notify_storm.measure),
             ("ws_fanout", ws_fanout.measure), ("ws_idle", ws_idle.measure),
             ("reconnect_storm", reconnect_storm.measure)]
SUITE_FANOUT_SUBSCRIBERS = 1000


def main():
    """Parse, run the suite (N times), print the medians."""
    p = common_parser(__doc__.splitlines()[0])
    g = p.add_argument_group("suite")
    g.add_argument("--only", help="comma-separated scenarios to run: " + ", ".join(n for n, _ in SCENARIOS))
    g.add_argument("--skip", default="", help="comma-separated scenarios to leave out")
    g.add_argument("--repeat", type=int, default=1, help="run the suite this many times, then print the medians")
    g.add_argument("--fanout-full", action="store_true", help="ws_fanout with 5,000 subscribers (about 3 more min)")
    for module in (order_flow, overload, flash_sale, notify_storm, ws_idle, reconnect_storm):
        module.add_options(p)
    ws_fanout.add_options(p, subscribers=SUITE_FANOUT_SUBSCRIBERS)
    args = p.parse_args()
    if args.fanout_full:
        args.subscribers = 5000
    ws_fanout.check_options(p, args)
    names = [n for n, _ in SCENARIOS]
    chosen = args.only.split(",") if args.only else names
    skipped = [s for s in args.skip.split(",") if s]
    unknown = [n for n in chosen + skipped if n not in names]
    if unknown:
        p.error(f"unknown scenario(s) {unknown}; known: {names}")
    scenarios = [(n, m) for n, m in SCENARIOS if n in chosen and n not in skipped]
    statuses, files = [], []
    out = args.out
    for k in range(args.repeat):
        if args.repeat > 1:
            log(f"suite run {k + 1} of {args.repeat}")
            args.out = f"{out[:-5]}-{k + 1}.json" if out else None
        statuses.append(run_scenarios(args, scenarios, "suite"))
        files.append(args.written)
    if args.repeat > 1:
        runs = []
        for path in files:
            with open(path, encoding="utf-8") as fh:
                runs.append(json.load(fh))
        print("\n## median of the runs\n")
        print(render_medians({"runs": runs}))
    return max(statuses)


if __name__ == "__main__":
    sys.exit(main())
