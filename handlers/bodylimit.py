"""The request-body limit in front of the application: a body over MAX_BODY_BYTES gets the contract's 413.

Tornado alone drops the connection when a body exceeds the server's `max_body_size`, so the client sees no answer.
This delegate answers 413 `PAYLOAD_TOO_LARGE` as soon as the headers (or the chunks read so far) show the body is
too large, then reads and discards the rest up to DISCARD_LIMIT so the client, still sending, receives the answer
instead of a reset; beyond that the connection is closed after the answer.
"""
from __future__ import annotations

import json

from tornado import httputil

DISCARD_LIMIT = 16 << 20


class BodyLimit(httputil.HTTPServerConnectionDelegate):
    """Wraps the Application as the HTTPServer's request callback."""

    def __init__(self, app, limit: int, on_refused=None):
        self.app = app
        self.limit = limit
        self.on_refused = on_refused  # called with (request start line, headers) to add headers / count

    def start_request(self, server_conn, request_conn):
        return _Limited(self, server_conn, request_conn)

    def on_close(self, server_conn):
        self.app.on_close(server_conn)


def refusal_body(limit: int) -> bytes:
    """The contract's 413 body."""
    return json.dumps({"error": {"code": "PAYLOAD_TOO_LARGE", "message": f"请求体超过 {limit} 字节"}},
                      ensure_ascii=False).encode()


class _Limited(httputil.HTTPMessageDelegate):
    def __init__(self, owner, server_conn, request_conn):
        self.owner = owner
        self.server_conn = server_conn
        self.conn = request_conn
        self.inner = None
        self.refused = False
        self.received = 0
        self.start_line = None
        self.headers = None
        self.done = False

    def headers_received(self, start_line, headers):
        self.start_line, self.headers = start_line, headers
        length = headers.get("Content-Length")
        try:
            too_long = length is not None and int(length.split(",")[0].strip()) > self.owner.limit
        except ValueError:
            too_long = False  # Tornado answers 400 for a malformed length itself
        if too_long:
            self._refuse(close_now=int(length.split(",")[0].strip()) > DISCARD_LIMIT)
            return None
        self.inner = self.owner.app.start_request(self.server_conn, self.conn)
        return self.inner.headers_received(start_line, headers)

    def data_received(self, chunk):
        self.received += len(chunk)
        if self.refused:
            if self.received > DISCARD_LIMIT:
                self._finish()  # enough: the connection closes once the answer is out
            return None
        if self.received > self.owner.limit:  # a chunked body that grew too large
            self.inner.on_connection_close()
            self.inner = None
            self._refuse(close_now=False)
            return None
        return self.inner.data_received(chunk)

    def finish(self):
        if self.refused:
            self._finish()
        else:
            self.inner.finish()

    def _finish(self):
        if not self.done:
            self.done = True
            self.conn.finish()

    def on_connection_close(self):
        if self.inner is not None:
            self.inner.on_connection_close()

    def _refuse(self, close_now):
        self.refused = True
        body = refusal_body(self.owner.limit)
        headers = httputil.HTTPHeaders({"Content-Type": "application/json; charset=UTF-8",
                                        "Content-Length": str(len(body)), "Connection": "close",
                                        "Cache-Control": "no-store"})
        if self.owner.on_refused is not None:
            self.owner.on_refused(self.start_line, self.headers, headers)
        # Read on (and discard) rather than fail the read: the stream closes once the answer is out and finished.
        self.conn.set_max_body_size(1 << 62)
        self.conn.write_headers(httputil.ResponseStartLine("HTTP/1.1", 413, "Payload Too Large"), headers, body)
        if close_now:
            self._finish()
