"""The fan-out bench's statistics, summary table and pass/fail check."""
from __future__ import annotations

import math


def percentile(sorted_values, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_values:
        return float("nan")
    return sorted_values[max(0, math.ceil(p / 100 * len(sorted_values)) - 1)]


def spread(values_ms):
    """p50 / p99 / max / mean of a list of milliseconds."""
    ordered = sorted(values_ms)
    return {"n": len(ordered), "p50": percentile(ordered, 50), "p99": percentile(ordered, 99),
            "max": ordered[-1] if ordered else float("nan"),
            "mean": sum(ordered) / len(ordered) if ordered else float("nan")}


def print_summary(f):
    """The summary table on stdout."""
    n = f["subscribers"]
    per_conn = (f["rss_open_kib"] - f["rss_before_kib"]) / n
    m = f["machine"]
    lines = [
        "",
        f"WebSocket fan-out: {n} subscribers on one service process; {m['nproc']} CPUs ({m['cpu']}), "
        f"{m['mem_gib']} GiB, Python {m['python']}",
        f"notifications: {sum(f['codes'].values())} POSTs, {f['concurrency']} in flight, answers {f['codes']}; "
        f"paid frames received: {f['paid_frames']}/{n}",
        "",
        f"{'latency (ms)':<48}{'n':>6}{'p50':>9}{'p99':>9}{'max':>9}{'mean':>9}",
    ]
    for label, key in ((f"{f['concurrency']} in flight: POST sent -> 'paid' frame", "latency_ms"),
                       ("  POST sent -> 204 received", "ack_ms"),
                       ("  204 received -> 'paid' frame", "push_after_ack_ms"),
                       ("one at a time: POST sent -> 'paid' frame", "probe_latency_ms"),
                       ("  POST sent -> 204 received", "probe_ack_ms")):
        s = f[key]
        lines.append(f"{label:<48}{s['n']:>6}{s['p50']:>9.1f}{s['p99']:>9.1f}{s['max']:>9.1f}{s['mean']:>9.1f}")
    lines += [
        "",
        f"{'throughput (first POST -> last paid frame)':<48}{f['throughput_per_s']:>9.1f} notifications/s"
        f"  ({f['loaded']} in {f['first_to_last_push_seconds']:.1f}s)",
        f"{'CPU seconds in that window':<48}" + ", ".join(f"{k} {v:.1f}" for k, v in f["cpu_seconds"].items()),
        f"{'service CPU per notification':<48}{f['service_cpu_ms_per_notification']:>9.1f} ms"
        f"  (load average at start {f['loadavg_at_start'][0]:.2f}, at end {f['loadavg_at_end'][0]:.2f})",
        f"{'service RSS before sockets':<48}{f['rss_before_kib'] / 1024:>9.1f} MiB  ({f['fds_before']} fds)",
        f"{'service RSS with sockets open, subscribed':<48}{f['rss_open_kib'] / 1024:>9.1f} MiB  ({f['fds_open']} fds)",
        f"{'memory per connection':<48}{per_conn:>9.1f} KiB",
        f"{'service RSS after the pushes / peak':<48}{f['rss_after_push_kib'] / 1024:>9.1f} MiB"
        f"  / {f['rss_peak_kib'] / 1024:.1f} MiB",
        f"{'service CPU per open+subscribe':<48}{f['service_cpu_ms_per_subscribe']:>9.2f} ms",
        f"{'closing all sockets at once':<48}{f['close_seconds']:>9.1f}s  "
        f"(service CPU {f['service_cpu_close_seconds']:.1f}s, {f['fds_after_close']} fds left)",
        f"{'service RLIMIT_NOFILE (inherited) / WORKERS':<48}{f['service_max_open_files']:>9}  / {f.get('workers', 1)}"
        " (RSS, fds and CPU: the whole process tree)",
        f"{'setup: users+orders via API / open+subscribe':<48}{f['setup_seconds']:>9.1f}s  / {f['open_seconds']:.1f}s",
        f"database: orders {f['database']['orders']}, reservations {f['database']['reservations']}, "
        f"notifications {f['database']['notifications']}, booking notices {f['database']['booking_notices']}",
    ]
    print("\n".join(lines), flush=True)
    return per_conn


def verdict(f):
    """Problems that make the figures meaningless."""
    n = f["subscribers"]
    problems = []
    if f["codes"] != {"204": n}:
        problems.append(f"not every notification was answered 204: {f['codes']}")
    if f["paid_frames"] != n:
        problems.append(f"only {f['paid_frames']}/{n} subscribers got their paid frame")
    if f["database"]["orders"].get("paid") != n or f["database"]["reservations"].get("confirmed") != n:
        problems.append(f"database does not show {n} paid orders with confirmed seats: {f['database']}")
    return problems
