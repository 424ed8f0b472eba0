"""Log set-up: one line (or one JSON object) per record, and no secret ever written.

Secrets reach log lines mostly through URLs (jscode2session takes `secret` and `js_code` in its query, the
subscribe-message call `access_token`, the WebSocket `token`) and headers (`Authorization: Bearer ...`). Every
record passes through `Redactor` before any handler formats it, so a library that logs a URL cannot leak one; the
HTTP client libraries are also kept at WARNING, and the access log never writes a query string.
"""
from __future__ import annotations

import logging
import re

from pythonjsonlogger.json import JsonFormatter

from . import metrics
from .context import order_id_var, request_id_var

_QUERY_SECRET = re.compile(
    r"(?i)((?:^|[?&\s\"'(,;])(?:secret|app_?secret|js_code|access_token|token|password|session_key)=)"
    r"[^&\s\"'),;]+")
_JSON_SECRET = re.compile(
    r"(?i)([\"'](?:secret|app_?secret|js_code|access_token|token|password|session_key|apiv3_key|private_key)"
    r"[\"']\s*:\s*[\"'])[^\"']*")
_BEARER = re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+")
_QUIET = ("httpx", "httpcore", "tornado.curl_httpclient", "peewee", "peewee.async", "asyncio", "hpack")


# Words one of which every secret-looking value above comes with ("apiv3_key" and "private_key" end in "_key",
# "session_key" too); most lines have none, and a few substring tests cost less than a case-blind regex scan.
_MAYBE_SECRET = ("secret", "token", "js_code", "password", "_key", "bearer")


def redact(text: str) -> str:
    """The text with every secret-looking value replaced by ***."""
    low = text.lower()
    if not any(word in low for word in _MAYBE_SECRET):  # most lines: nothing to replace
        return text
    text = _QUERY_SECRET.sub(r"\1***", text)
    text = _JSON_SECRET.sub(r"\1***", text)
    return _BEARER.sub(r"\1***", text)


class ContextFields(logging.Filter):
    """Adds request_id and order_id (from telemetry.context) to every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = getattr(record, "request_id", None) or request_id_var.get()
        record.order_id = getattr(record, "order_id", None) or order_id_var.get()
        return True


class Redactor(logging.Filter):
    """Rewrites each record's message (and exception text) with secrets removed."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        if record.exc_info and not record.exc_text:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
        elif record.exc_text:
            record.exc_text = redact(record.exc_text)
        return True


def formatter(fmt: str) -> logging.Formatter:
    """`text`: one line per record; `json`: one JSON object per line (python-json-logger)."""
    if fmt == "json":
        return JsonFormatter("%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s %(order_id)s "
                             "%(process)d",
                             rename_fields={"asctime": "time", "levelname": "level", "name": "logger",
                                            "process": "pid"},
                             datefmt="%Y-%m-%dT%H:%M:%S%z", json_ensure_ascii=False)
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s]: %(message)s")


def configure(level="INFO", fmt="text"):
    """Root logging for the service: the format, the context and redaction filters on every handler, noisy
    libraries quiet."""
    root = logging.getLogger()
    for handler in list(root.handlers):
        root.removeHandler(handler)
    handler = logging.StreamHandler()
    handler.addFilter(ContextFields())
    handler.addFilter(Redactor())
    handler.setFormatter(formatter(fmt))
    root.addHandler(handler)
    root.setLevel(level)
    # No format of ours names the thread or the multiprocessing process: not looked up for every record.
    logging.logThreads = False
    logging.logMultiprocessing = False
    for name in _QUIET:
        logging.getLogger(name).setLevel(max(logging.WARNING, root.level))
    return handler


def access_log(handler) -> None:
    """Tornado's log_function: status, method, the path without its query string, time, client address.

    Also where the request's metrics are counted (one place sees every answer, errors and 404s included).
    """
    status = handler.get_status()
    request = handler.request
    # 503 is "busy or a dependency down, retry": the dependency's failure is logged as an error where it is met,
    # and a flood shed with 503s must not bury the log in errors.
    level = logging.INFO if status < 400 else logging.WARNING if status < 500 or status == 503 else logging.ERROR
    ip = getattr(handler, "client_ip", None) or request.remote_ip
    seconds = request.request_time()
    logging.getLogger("tornado.access").log(level, "%d %s %s (%s) %.1fms", status, request.method, request.path, ip,
                                            1000.0 * seconds, extra={"request_id": getattr(handler, "request_id", None),
                                                                     "status": status, "method": request.method,
                                                                     "path": request.path, "client_ip": ip,
                                                                     "duration_ms": round(1000.0 * seconds, 1)})
    method = metrics.method_label(request.method, metrics.served_methods(type(handler)))
    metrics.observe_request(getattr(handler, "route_name", None) or "unmatched", method, status, seconds)
