"""Prometheus metrics (prometheus-client in its multiprocess mode, so /metrics counts every process on the port).

The multiprocess directory must be known before prometheus_client is imported: PROMETHEUS_MULTIPROC_DIR from the
environment (systemd: under /run/gym), else a fresh directory under the system's temp dir, chosen here, at import,
and removed when the process that chose it exits (its forked workers leave it; a kill -9's goes at a later start).
`server.py` empties it before the workers start, of every file but this process's own: those hold the metrics made
at import (the unlabelled ones), and deleting them would leave this process counting into unlinked files that
/metrics never reads (so a one-worker service showed no counters). A file of a dead process that had this pid is
stale and goes before prometheus_client opens it. A process that imported prometheus_client before this module (in
its single-process mode) fails to import it.
"""
from __future__ import annotations

import atexit
import os
import shutil
import tempfile

_TEMP_PREFIX = "gym-metrics-"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    return True


def _sweep_dead_temp_dirs(parent: str):
    """Remove the temp directories of this user's processes that died without removing theirs (kill -9).

    A directory is named gym-metrics-PID-random; one whose PID is alive (or could not be read) is left alone."""
    try:
        names = os.listdir(parent)
    except OSError:
        return
    for name in names:
        if not name.startswith(_TEMP_PREFIX):
            continue
        pid = name[len(_TEMP_PREFIX):].split("-", 1)[0]
        path = os.path.join(parent, name)
        try:
            if not pid.isdigit() or os.stat(path).st_uid != os.getuid() or _alive(int(pid)):
                continue
        except OSError:
            continue
        shutil.rmtree(path, ignore_errors=True)


def _remove_own_temp_dir(path: str, creator: int):
    """At exit of the process that made the directory (forked workers inherit this hook and must not run it)."""
    if os.getpid() == creator:
        shutil.rmtree(path, ignore_errors=True)


if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # No directory given (`make run`, a bench's service, a command or test process that imports this module): a
    # temp directory of this process's own, removed when it exits; one a kill -9 left goes at a later start.
    _sweep_dead_temp_dirs(tempfile.gettempdir())
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix=f"{_TEMP_PREFIX}{os.getpid()}-")
    atexit.register(_remove_own_temp_dir, os.environ["PROMETHEUS_MULTIPROC_DIR"], os.getpid())
os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"], exist_ok=True)
_OWN_SUFFIX = f"_{os.getpid()}.db"
for _name in os.listdir(os.environ["PROMETHEUS_MULTIPROC_DIR"]):
    if _name.endswith(_OWN_SUFFIX):
        os.remove(os.path.join(os.environ["PROMETHEUS_MULTIPROC_DIR"], _name))

from prometheus_client import (  # noqa: E402 - after the directory is set
    CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, Histogram, generate_latest, multiprocess, values,
)

# prometheus_client picks its mode once, when it is first imported. Imported before this module set the directory
# (a test module that imports its parser first), it keeps this process's metrics in memory, where /metrics never
# reads them: refuse to start like that rather than export nothing of this process.
if values.ValueClass is values.MutexValue:
    raise ImportError("prometheus_client was imported before telemetry.metrics chose PROMETHEUS_MULTIPROC_DIR; "
                      "import telemetry.metrics first (or set PROMETHEUS_MULTIPROC_DIR)")

MULTIPROC_DIR = os.environ["PROMETHEUS_MULTIPROC_DIR"]

HTTP_REQUESTS = Counter("gym_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
HTTP_DURATION = Histogram("gym_http_request_duration_seconds", "Time to answer an HTTP request", ["route", "method"],
                          buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10))
PAYMENTS = Counter("gym_payments_total", "Payments applied, by how we learnt of them (notify | query)", ["source"])
PAYMENTS_STARTED = Counter("gym_payments_started_total", "WeChat Pay orders placed (prepay id or code URL obtained)")
PAYMENT_FAILURES = Counter("gym_payment_failures_total", "Payments reported failed", ["reason"])
NOTIFICATIONS = Counter("gym_notifications_total", "WeChat Pay notifications by outcome", ["kind", "outcome"])
REFUNDS = Counter("gym_refunds_total", "Refunds that reached SUCCESS, CLOSED or ABNORMAL", ["status"])
REFUND_REQUIRED = Gauge("gym_refund_required_orders", "Orders paid with no seat, waiting for an operator's refund",
                        multiprocess_mode="mostrecent")
SEAT_RELEASES = Counter("gym_seat_releases_total", "Seats given back, on time = within one reconcile interval",
                        ["on_time"])
RECONCILE_LAST_SUCCESS = Gauge("gym_reconcile_last_success_timestamp_seconds",
                               "Unix time of the reconciler's last complete pass", multiprocess_mode="max")
RECONCILE_INTERVAL = Gauge("gym_reconcile_interval_seconds", "The configured reconcile interval",
                           multiprocess_mode="max")
SUBSCRIBE_MESSAGES = Counter("gym_subscribe_messages_total", "Subscribe messages to parents by result",
                             ["kind", "result"])
WECHATPAY_DURATION = Histogram("gym_wechatpay_request_duration_seconds", "WeChat Pay API call latency", ["api"],
                               buckets=(0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 15))
WECHATPAY_CALLS = Counter("gym_wechatpay_requests_total", "WeChat Pay API calls by outcome", ["api", "outcome"])
APIV3_DECRYPTS = Counter("gym_wechatpay_apiv3_decrypts_total",
                         "Resources decrypted (notification, certificates) by the APIv3 key that opened them "
                         "(current | previous | none)", ["what", "key"])
BILL_DISCREPANCIES = Gauge("gym_bill_discrepancies",
                           "Discrepancies between WeChat Pay's bill and the ledger waiting for finance's decision "
                           "(found by each day's last reconciliation)", ["category"], multiprocess_mode="mostrecent")
BILL_LAST_RECONCILED_DAY = Gauge("gym_bill_last_reconciled_day",
                                 "Start (00:00 Asia/Shanghai, unix time) of the latest day whose bill was reconciled; "
                                 "0 before any", multiprocess_mode="mostrecent")
DEPENDENCY_UP = Gauge("gym_dependency_up", "1 when the dependency answers (checked at each scrape)",
                      ["dependency"], multiprocess_mode="mostrecent")
DB_POOL = Gauge("gym_db_pool_connections", "Database pool connections of each process", ["state"],
                multiprocess_mode="livesum")
AUDIT_VERIFY_OK = Gauge("gym_audit_verify_ok", "1 when the last verification found the audit trail intact, 0 when not",
                        multiprocess_mode="mostrecent")
AUDIT_VERIFY_TIME = Gauge("gym_audit_verify_timestamp_seconds", "Unix time of the last verification of the audit trail",
                          multiprocess_mode="max")
PERSONAL_DATA_UNREADABLE = Gauge("gym_personal_data_unreadable_values",
                                 "Encrypted values (openids) under a data key the service was not given, counted at "
                                 "start: their parents would log in as new users", multiprocess_mode="max")
AUDIT_SEAL_LAG = Gauge("gym_audit_seal_lag_seconds", "Age of the oldest audit row not sealed yet (0 when all are)",
                       multiprocess_mode="mostrecent")
ADMISSION = Counter("gym_admission_total", "Expensive requests by budget and outcome: admitted at once, queued "
                    "then admitted, shed (no room to wait, or the wait ran out)",
                    ["budget", "outcome"])
ADMISSION_SLOTS = Gauge("gym_admission_requests", "Expensive requests of each budget being served (in_use) or waiting "
                        "for a slot, at the scrape", ["budget", "state"], multiprocess_mode="livesum")
REDIS_PUSH_BACKLOG = Gauge("gym_push_outbox", "Status pushes waiting for Redis", multiprocess_mode="livesum")

ON_TIME_LABELS = ("true", "false")


def init_series(reconcile_interval: float, notification_kinds, notification_outcomes, refund_statuses,
                message_kinds):
    """Create every known label combination at zero, so the first event shows in increase() (the label values are
    the service's own: server.py passes them)."""
    for source in ("notify", "query"):
        PAYMENTS.labels(source)
    for kind in notification_kinds:
        for outcome in notification_outcomes:
            NOTIFICATIONS.labels(kind, outcome)
    for kind in message_kinds:
        for result in ("sent", "retry", "failed"):
            SUBSCRIBE_MESSAGES.labels(kind, result)
    for status in refund_statuses:
        REFUNDS.labels(status)
    for on_time in ON_TIME_LABELS:
        SEAT_RELEASES.labels(on_time)
    for what in ("notification", "certificates"):
        for key in ("current", "previous", "none"):
            APIV3_DECRYPTS.labels(what, key)
    RECONCILE_INTERVAL.set(reconcile_interval)


HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")
OTHER_METHOD = "other"  # the `method` label of every method the route does not serve (`curl -X QZXA` included)
_SERVED = {}  # handler class -> the methods it serves


def served_methods(handler_class) -> frozenset:
    """The HTTP methods a handler class of ours defines (all of HTTP_METHODS for one that defines none itself, such
    as the WebSocket's and the 404 handler)."""
    served = _SERVED.get(handler_class)
    if served is None:
        ours = [k for k in handler_class.__mro__ if k.__module__.split(".")[0] != "tornado"]
        served = frozenset(m for m in HTTP_METHODS if any(m.lower() in vars(k) for k in ours)) or frozenset(
            HTTP_METHODS)
        _SERVED[handler_class] = served
    return served


def method_label(method: str, served=HTTP_METHODS) -> str:
    """The `method` label: the method when the route serves it, else OTHER_METHOD, so no client can make series."""
    return method if method in served else OTHER_METHOD


_REQUEST_SERIES = {}  # (route, method, status) -> (its counter, its histogram): labels() looked up once per series


def observe_request(route: str, method: str, status: int, seconds: float):
    """Count one answered HTTP request (`method` already a method_label; routes, methods and statuses are the
    service's own few values, so the series are few)."""
    key = (route, method, status)
    series = _REQUEST_SERIES.get(key)
    if series is None:
        series = _REQUEST_SERIES[key] = (HTTP_REQUESTS.labels(route, method, str(status)),
                                         HTTP_DURATION.labels(route, method))
    series[0].inc()
    series[1].observe(seconds)


def committed(uow, reconcile_interval: float, refund_statuses):
    """Count what a committed unit of work did: payments, seat releases, failures, and refunds that reached one of
    `refund_statuses`."""
    for source in uow.payments:
        PAYMENTS.labels("notify" if source == "notify" else "query").inc()
    for released_at, due in uow.releases:
        late = released_at is not None and due is not None and (released_at - due).total_seconds() > reconcile_interval
        SEAT_RELEASES.labels("false" if late else "true").inc()
    for reason in uow.failures:
        PAYMENT_FAILURES.labels(reason or "unknown").inc()
    for status in uow.refunds:
        if status in refund_statuses:
            REFUNDS.labels(status).inc()


def render() -> tuple[bytes, str]:
    """The text exposition of every process's metrics."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    return generate_latest(registry), CONTENT_TYPE_LATEST


def process_exited(pid: int):
    """Drop a dead worker's live gauges (called by the supervisor)."""
    multiprocess.mark_process_dead(pid, path=MULTIPROC_DIR)


def clear_directory():
    """Start from nothing: remove the files of a previous run, not this process's (called before the workers
    start)."""
    os.makedirs(MULTIPROC_DIR, exist_ok=True)
    for name in os.listdir(MULTIPROC_DIR):
        if name.endswith(".db") and not name.endswith(f"_{os.getpid()}.db"):
            os.remove(os.path.join(MULTIPROC_DIR, name))


def sample_values() -> dict:
    """{(name, labels...): value} of every sample, summed across processes (for the back office's figures)."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=MULTIPROC_DIR)
    values = {}
    for family in registry.collect():
        for sample in family.samples:
            key = (sample.name, tuple(sorted(sample.labels.items())))
            values[key] = values.get(key, 0.0) + sample.value
    return values


def business_figures() -> dict:
    """The seeds' figures from the counters since the service started (see docs/deploy.md for their PromQL)."""
    values = sample_values()

    def total(name, **labels):
        return sum(v for (n, ls), v in values.items()
                   if n == name and all(dict(ls).get(k) == want for k, want in labels.items()))

    payments = total("gym_payments_total")
    failures = total("gym_payment_failures_total")
    releases = total("gym_seat_releases_total")
    notifications = total("gym_notifications_total")

    def ratio(part, whole):
        return None if not whole else part / whole

    return {
        "payment_success_rate": ratio(payments, payments + failures),
        "lost_order_rate": ratio(total("gym_payments_total", source="query"), payments),
        "seats_released_on_time": ratio(total("gym_seat_releases_total", on_time="true"), releases),
        "callbacks_handled": ratio(notifications - total("gym_notifications_total", outcome="refused"),
                                   notifications),
        "payments": payments, "payment_failures": failures,
    }
