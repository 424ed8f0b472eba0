"""The Markdown tables: one run as it finishes, or the median of several runs (optionally beside another set).

    .venv/bin/python bench/report.py var/bench/suite-A.json var/bench/suite-B.json ...      # median of the runs
    .venv/bin/python bench/report.py --before before-*.json --after after-*.json           # two columns
    .venv/bin/python bench/report.py --max-noise 0.25 var/bench/suite-*.json     # quiet windows only

Every figure is also shown as a ratio to the hello-world ceiling of the same run: a rate divided by the
hello-world's requests/s, a CPU time per operation divided by the hello-world's CPU per request. A median of
ratios is taken run by run, so a run made on a slower moment is compared with its own ceiling.
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys


def ratio(run, h):
    """The figure `h` of `run` divided by the run's ceiling, or None."""
    c = (run.get("ceiling") or {}).get("hello")
    v = h.get("value")
    if not c or v is None or not h.get("ratio") or not isinstance(v, (int, float)) or math.isinf(v):
        return None
    if h["ratio"] == "rate":
        return v / c["requests_per_s"]
    return v / c["cpu_ms_per_request"]["hello-world"]


def fmt(v, unit=""):
    """A value as the table shows it."""
    if v is None:
        return "–"
    if isinstance(v, float) and math.isinf(v):
        return "not answered"
    if isinstance(v, float) and v.is_integer() and not unit:
        v = int(v)
    if unit == "cores":
        return f"{v:.2f} {unit}"
    if isinstance(v, int):
        text = f"{v:,}"
    elif isinstance(v, float):
        a = abs(v)
        text = f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:.2f}" if a >= 0.1 else f"{v:.4f}"
    else:
        text = str(v)
    return f"{text} {unit}".strip()


def fmt_ratio(r, kind):
    """A ratio: rates as a share of the hello-world's requests/s, CPU as a multiple of its CPU per request."""
    if r is None:
        return ""
    return f"{100 * r:.2f} % of hello req/s" if kind == "rate" else f"{r:.1f}× hello CPU/req"


def noise(window):
    """How many cores something other than the bench's processes kept busy during a measured window."""
    return {"key": "others_cores", "label": "others on the machine meanwhile (cores busy)", "unit": "cores",
            "value": round(window["others_cpu_seconds"] / window["seconds"], 2), "ratio": None}


def rows(run):
    """(scenario, headline) pairs of a run, the ceiling first, each scenario ending with its noise."""
    ceiling = run.get("ceiling") or {}
    out = [("ceiling", h) for h in ceiling.get("headline", [])]
    if ceiling:
        out.append(("ceiling", noise(ceiling["hello"]["window"])))
    for name, f in run.get("scenarios", {}).items():
        out += [(name, h) for h in f.get("headline", [])]
        if f.get("window"):
            out.append((name, noise(f["window"])))
    return out


def cpu_line(name, f):
    """CPU seconds per process over the scenario's measured window."""
    w = f.get("window") or (f.get("hello") or {}).get("window")
    if not w:
        return None
    parts = ", ".join(f"{k} {v:.2f}" for k, v in w["cpu_seconds"].items())
    return (f"- {name}: {w['seconds']:.1f} s window; CPU s: {parts}; others on the machine "
            f"{w['others_cpu_seconds']:.2f} (machine busy {w['machine_busy_seconds']:.2f}); "
            f"load average at start {f.get('loadavg_at_start', [0])[0]:.2f}")


def goal_note(run, h):
    """" — goal ≤ 5 ms: met" (or "not met") for a headline that carries a goal; "" otherwise."""
    g = h.get("goal")
    if not g:
        return ""
    v = ratio(run, h) if g["of"] == "ratio" else h.get("value")
    if not isinstance(v, (int, float)):
        return f" — goal {g['text']}: not measured"
    met = (g["at_most"] is None or v <= g["at_most"]) and (g["at_least"] is None or v >= g["at_least"])
    return f" — goal {g['text']}: **{'met' if met else 'not met'}**"


def render_run(run):
    """One run: meta, the figures with ratios, CPU by process, checks."""
    m, root = run["machine"], run["service_root"]
    lines = [
        "",
        f"## {run['suite']} {run.get('label') or ''} — {run['date']}".rstrip(),
        "",
        f"- command: `{run['command']}`",
        f"- service root: `{root['path']}` at {str(root.get('commit'))[:10]} ({root.get('subject')})"
        f"{' + uncommitted changes' if root.get('dirty') else ''}; WORKERS={run['workers']}"
        f"{'; env ' + ' '.join(run['env']) if run['env'] else ''}",
        f"- machine: {m['nproc']} CPUs ({m['cpu']}), {m['mem_gib']} GiB, kernel {m['kernel']}, Python {m['python']};"
        f" load average at start {run['loadavg_at_start'][0]:.2f}",
    ]
    if run.get("count_sql"):
        lines.append("- **--count-sql**: MySQL traffic went through the counting proxy; timings are disturbed")
    if run.get("profile"):
        lines.append("- **--profile**: py-spy was sampling the service; timings are disturbed")
    for name, f in run.get("scenarios", {}).items():
        if f.get("service_env"):
            lines.append(f"- {name} ran with {' '.join(f'{k}={v}' for k, v in f['service_env'].items())}"
                         f"{': ' + f['service_env_why'] if f.get('service_env_why') else ''}")
    lines += ["", "| scenario | figure | value | ratio to ceiling |", "|---|---|---|---|"]
    for name, h in rows(run):
        lines.append(f"| {name} | {h['label']} | {fmt(h['value'], h['unit'])}{goal_note(run, h)} | "
                     f"{fmt_ratio(ratio(run, h), h.get('ratio'))} |")
    lines += ["", "CPU by process over each measured window:"]
    if run.get("ceiling"):
        lines.append(cpu_line("ceiling (hello-world)", {**run["ceiling"]["hello"],
                                                        "loadavg_at_start": run["ceiling"]["loadavg_at_start"]}))
    for name, f in run.get("scenarios", {}).items():
        line = cpu_line(name, f)
        if line:
            lines.append(line)
    sql = [(name, f["sql_per_op"]) for name, f in run.get("scenarios", {}).items() if f.get("sql_per_op")]
    if sql:
        lines += ["", "SQL statements per operation (counting proxy):"]
        for name, counts in sql:
            lines.append(f"- {name}: " + ", ".join(f"{k} {v:g}" for k, v in counts.items()))
    checks = [(name, c) for name, f in run.get("scenarios", {}).items() for c in f.get("checks", ())]
    bad = [x for x in checks if not x[1]["ok"]]
    lines += ["", f"Checks: {len(checks) - len(bad)} of {len(checks)} passed."]
    for name, c in bad:
        lines.append(f"- FAILED {name}: {c['what']}: {c['detail']}")
    return "\n".join(lines)


def window_noise(run, name):
    """Cores the rest of the machine kept busy during a scenario's window (the ceiling's for "ceiling")."""
    if name == "ceiling":
        w = run["ceiling"]["hello"]["window"]
    else:
        w = run["scenarios"][name].get("window")
    return w["others_cpu_seconds"] / w["seconds"] if w else 0.0


def median_table(runs, max_noise=None):
    """{(scenario, key): (label, unit, ratio kind, [values], [ratios])} over several runs.

    With max_noise, a scenario's figures from a window in which the rest of the machine kept more than that many
    cores busy are left out (the scenario's noise row itself is kept, to show what was left out).
    """
    table = {}
    for run in runs:
        for name, h in rows(run):
            if max_noise is not None and h["key"] != "others_cores" and window_noise(run, name) > max_noise:
                continue
            label = h["label"] + (f" (goal {h['goal']['text']})" if h.get("goal") else "")
            entry = table.setdefault((name, h["key"]), (label, h["unit"], h.get("ratio"), [], []))
            if h.get("value") is not None:
                entry[3].append(h["value"])
            r = ratio(run, h)
            ceiling_quiet = max_noise is None or not run.get("ceiling") or window_noise(run, "ceiling") <= max_noise
            if r is not None and ceiling_quiet:  # a ratio to a disturbed ceiling would mislead
                entry[4].append(r)
    return table


def _med(values):
    return statistics.median(values) if values else None


def _range(values, unit):
    if len(values) < 2 or min(values) == max(values):
        return ""
    if unit == "cores":
        return f"{min(values):.2f} – {max(values):.2f}"
    return f"{fmt(min(values))} – {fmt(max(values))}"


def render_medians(sets, max_noise=None):
    """A Markdown table: per set (name -> runs) the median value, its range, the runs used and the median ratio."""
    tables = {name: median_table(runs, max_noise) for name, runs in sets.items()}
    keys = []
    for t in tables.values():
        keys += [k for k in t if k not in keys]
    scenarios = list(dict.fromkeys(k[0] for k in keys))
    keys.sort(key=lambda k: (scenarios.index(k[0]), k[1] == "others_cores"))  # each scenario's noise last
    head = "| scenario | figure |" + "".join(f" {n}: median (range) | {n}: ratio |" for n in sets)
    lines = [head, "|---|---|" + "---|---|" * len(sets)]
    for key in keys:
        label, unit, kind = next(t[key][:3] for t in tables.values() if key in t)
        cells = ""
        for name in sets:
            entry = tables[name].get(key)
            if entry is None:
                cells += " | |"
                continue
            values, ratios = entry[3], entry[4]
            rng = _range(values, unit)
            n = f"n={len(values)}" if len(values) > 1 else ""
            extra = "; ".join(x for x in (rng, n) if x)
            cells += f" {fmt(_med(values), unit)}{f' ({extra})' if extra else ''} | {fmt_ratio(_med(ratios), kind)} |"
        lines.append(f"| {key[0]} | {label} |{cells}")
    for name, runs in sets.items():
        loads = ", ".join(f"{r['loadavg_at_start'][0]:.2f}" for r in runs)
        lines.append("")
        lines.append(f"{name}: {len(runs)} run(s), load average at their starts {loads}; "
                     + "; ".join(f"{r['date']} {str(r['service_root'].get('commit'))[:10]}" for r in runs))
    return "\n".join(lines)


def main():
    """Read the figures files and print the median table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="*", help="figures files of one set")
    p.add_argument("--before", nargs="*", default=[])
    p.add_argument("--after", nargs="*", default=[])
    p.add_argument("--max-noise", type=float, metavar="CORES",
                   help="leave out a scenario's figures from windows in which others kept more cores busy")
    args = p.parse_args()

    def load(paths):
        return [json.load(open(path, encoding="utf-8")) for path in paths]

    sets = {}
    if args.files:
        sets["runs"] = load(args.files)
    if args.before:
        sets["before"] = load(args.before)
    if args.after:
        sets["after"] = load(args.after)
    if not sets:
        p.error("no figures files")
    print(render_medians(sets, args.max_noise))


if __name__ == "__main__":
    sys.exit(main())
