"""Where the service's CPU went, from a py-spy raw (collapsed stacks) file the bench wrote with --profile.

    .venv/bin/python bench/profile_summary.py var/bench/profile-notify_storm-<time>.txt [--top 20]

Prints, as Markdown: the share of samples by entry point (which handler or background job the stack ran
under), by layer (the library or package of the innermost frame: peewee building SQL, PyMySQL reading replies,
Tornado, logging, ...), per entry point the layers again, and the top functions by own time and by inclusive time.
py-spy samples only running threads by default, so idle waiting is not in the shares.
"""
from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict

FRAME = re.compile(r"^(?P<func>.*?) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

# Innermost-frame file -> layer; the first match wins.
LAYERS = [
    ("peewee_async", "peewee-async"), ("playhouse/", "peewee"), ("peewee.py", "peewee (building SQL, models)"),
    ("aiomysql/", "aiomysql"), ("pymysql/", "PyMySQL (protocol, replies)"),
    ("tornado/web.py", "tornado.web"), ("tornado/httputil.py", "tornado HTTP parsing"),
    ("tornado/http1connection.py", "tornado HTTP/1"), ("tornado/iostream.py", "tornado IOStream"),
    ("tornado/websocket.py", "tornado websocket"), ("tornado/", "tornado other"),
    ("redis/", "redis-py"), ("httpx/", "httpx/httpcore"), ("httpcore/", "httpx/httpcore"), ("anyio/", "anyio"),
    ("h11/", "httpx/httpcore"), ("wechatpayv3/", "wechatpayv3"), ("cryptography/", "cryptography"),
    ("logging/", "logging"), ("json/", "json"), ("asyncio/", "asyncio event loop"), ("selectors.py", "asyncio event loop"),
    ("ssl.py", "ssl"), ("uuid.py", "uuid"), ("datetime", "datetime"), ("_strptime", "datetime"),
    ("services/", "our code: services/"), ("handlers/", "our code: handlers/"), ("realtime/", "our code: realtime/"),
    ("models/", "our code: models/"), ("errors.py", "our code"), ("server.py", "our code"),
    ("settings.py", "our code"),
]

# A frame naming an entry point -> its label; the outermost match in a stack wins.
ENTRIES = [
    ("PaymentNotificationHandler", "payment notification (POST /wxpay/callback)"),
    ("CreateOrderHandler", "order create (POST /orders/create)"),
    ("WxPayCreateHandler", "prepay (POST /wxpay/create)"),
    ("OrderStatusSocket", "WebSocket (open, subscribe, push)"),
    ("LoginHandler", "parent login"),
    ("BookingNotices", "booking notices (background)"),
    ("Hub.", "Hub: Redis pub/sub fan-out"),
    ("Reconciler", "reconciler (background)"),
    ("Application.log_request", "access log"),
    # stacks py-spy caught without the handler's frame: the service function names the operation
    ("handle_payment_notification", "payment notification (POST /wxpay/callback)"),
    ("create_order (services/orders/booking.py", "order create (POST /orders/create)"),
    ("request_payment (services/payments/checkout.py", "prepay (POST /wxpay/create)"),
    ("obtain_prepay (services/payments/checkout.py", "prepay (POST /wxpay/create)"),
    ("_subscribe (realtime/ws.py", "WebSocket (open, subscribe, push)"),
    ("login_user (services/accounts/auth.py", "parent login"),
]


def parse(path):
    """[(frames outermost first, samples)]."""
    stacks = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\n")
            stack, _, count = line.rpartition(" ")
            if not stack or not count.isdigit():
                continue
            frames = stack.split(";")
            if frames and frames[0].startswith("process "):
                frames = frames[1:]
            if frames and frames[0].startswith("thread "):
                frames = frames[1:]
            stacks.append((frames, int(count)))
    return stacks


def func_of(frame):
    """'Class.method (path/file.py)' without the line number."""
    m = FRAME.match(frame)
    return f"{m['func']} ({m['file']})" if m else frame


def layer_of(frame):
    """The layer of one frame."""
    m = FRAME.match(frame)
    path = m["file"] if m else frame
    for needle, label in LAYERS:
        if needle in path:
            return label
    return "python stdlib / other"


def entry_of(frames):
    """The entry point a stack ran under."""
    for frame in frames:
        for needle, label in ENTRIES:
            if needle in frame:
                return label
    if any("tornado/" in f for f in frames):
        return "tornado request/connection handling outside a handler"
    return "event loop, idle-ish and other"


def summarise(stacks, top):
    """The Markdown summary."""
    total = sum(n for _, n in stacks) or 1
    by_entry, by_layer = Counter(), Counter()
    entry_layers = defaultdict(Counter)
    own, inclusive = Counter(), Counter()
    for frames, n in stacks:
        if not frames:
            continue
        entry, layer = entry_of(frames), layer_of(frames[-1])
        by_entry[entry] += n
        by_layer[layer] += n
        entry_layers[entry][layer] += n
        own[func_of(frames[-1])] += n
        for f in set(func_of(f) for f in frames):
            inclusive[f] += n

    def pct(n, of=total):
        return f"{100 * n / of:.1f} %"

    out = [f"{total} samples", "", "| entry point | share |", "|---|---|"]
    out += [f"| {k} | {pct(v)} |" for k, v in by_entry.most_common()]
    out += ["", "| layer (innermost frame) | share |", "|---|---|"]
    out += [f"| {k} | {pct(v)} |" for k, v in by_layer.most_common(top)]
    for entry, n in by_entry.most_common(6):
        layers = ", ".join(f"{k} {pct(v, n)}" for k, v in entry_layers[entry].most_common(8))
        out += ["", f"**{entry}** ({pct(n)} of all): {layers}"]
    out += ["", "| top functions by own time | share |", "|---|---|"]
    out += [f"| `{k}` | {pct(v)} |" for k, v in own.most_common(top)]
    skip = ("asyncio/", "<module>", "run (", "Handle._run", "runners.py", "server.py")
    out += ["", "| top functions by inclusive time (event loop frames left out) | share |", "|---|---|"]
    out += [f"| `{k}` | {pct(v)} |" for k, v in inclusive.most_common(top * 3) if not any(s in k for s in skip)][:top + 4]
    return "\n".join(out)


def main():
    """Read one or more profile files and print the summary."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("files", nargs="+")
    p.add_argument("--top", type=int, default=20)
    args = p.parse_args()
    stacks = []
    for path in args.files:
        stacks += parse(path)
    print(summarise(stacks, args.top))


if __name__ == "__main__":
    sys.exit(main())
