"""A small HTTP/1.1 client with keep-alive connections, cheap enough that the load generator is not the bottleneck.

Tornado's simple_httpclient opens a new TCP connection per request and httpx spends several times the CPU of the
service's hello-world per request; this client is a plain asyncio.Protocol that writes a request and parses the
answer's head and Content-Length (or chunked) body, nothing more. Loopback only, no TLS, no redirects, no cookies.
"""
from __future__ import annotations

import asyncio
import json
from urllib.parse import urlparse


class HTTPError(Exception):
    """The connection broke or the answer could not be parsed."""


class Answer(tuple):
    """(status, body), with the answer's Retry-After in seconds (None when it had none)."""

    retry_after = None

    @classmethod
    def of(cls, status, body, retry_after=None):
        answer = cls((status, body))
        answer.retry_after = retry_after
        return answer


class Connection(asyncio.Protocol):
    """One keep-alive connection; one request at a time."""

    def __init__(self, host_header: bytes):
        self.host_header = host_header
        self.transport = None
        self.buf = bytearray()
        self.waiter = None
        self.head = None  # (status, content_length or None, chunked, close, retry_after) once the head is parsed
        self.closed = False

    # -- asyncio.Protocol ----------------------------------------------------------------------------
    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.waiter is not None:
            self._parse()

    def connection_lost(self, exc):
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            if self.head is not None and self.head[1] is None and not self.head[2]:
                self.waiter.set_result(Answer.of(self.head[0], bytes(self.buf), self.head[4]))  # delimited by the close
            else:
                self.waiter.set_exception(HTTPError(f"connection lost: {exc}"))

    # -- the answer ----------------------------------------------------------------------------------
    def _parse(self):
        if self.waiter.done():
            return
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            try:
                status = int(lines[0].split(" ", 2)[1])
            except (IndexError, ValueError):
                self.waiter.set_exception(HTTPError(f"bad status line {lines[0]!r}"))
                return
            length, chunked, close, retry_after = None, False, False, None
            for line in lines[1:]:
                name, _, value = line.partition(":")
                name = name.strip().lower()
                if name == "content-length":
                    length = int(value)
                elif name == "transfer-encoding" and "chunked" in value.lower():
                    chunked = True
                elif name == "connection" and value.strip().lower() == "close":
                    close = True
                elif name == "retry-after" and value.strip().isdigit():
                    retry_after = int(value.strip())
            if status in (204, 304) or 100 <= status < 200:
                length = 0
            self.head = (status, length, chunked, close, retry_after)
        status, length, chunked, close, retry_after = self.head
        if chunked:
            body = self._dechunk()
            if body is None:
                return
        elif length is not None:
            if len(self.buf) < length:
                return
            body = bytes(self.buf[:length])
            del self.buf[:length]
        else:
            return  # until the connection closes
        self.head = None
        if close:
            self.transport.close()
            self.closed = True
        self.waiter.set_result(Answer.of(status, body, retry_after))

    def _dechunk(self):
        """The whole chunked body once it has arrived (and removed from the buffer), else None."""
        pos, parts = 0, []
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            size = int(bytes(self.buf[pos:eol]).split(b";")[0], 16)
            if size == 0:
                end = self.buf.find(b"\r\n\r\n", eol)  # the empty line after any trailers
                if end < 0:
                    return None
                del self.buf[:end + 4]
                return b"".join(parts)
            start = eol + 2
            if len(self.buf) < start + size + 2:
                return None
            parts.append(bytes(self.buf[start:start + size]))
            pos = start + size + 2

    # -- the request ---------------------------------------------------------------------------------
    async def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None):
        """Send one request and wait for its answer: (status, body bytes) as an Answer."""
        if self.closed:
            raise HTTPError("connection closed")
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host_header.decode()}"]
        if body or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body)}")
        for name, value in (headers or {}).items():
            lines.append(f"{name}: {value}")
        self.waiter = asyncio.get_running_loop().create_future()
        self.transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body)
        try:
            return await self.waiter
        finally:
            self.waiter = None

    def close(self):
        """Close the socket."""
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class Client:
    """Keep-alive connections to one server, opened on demand and reused; any number in flight."""

    def __init__(self, base_url: str):
        parsed = urlparse(base_url)
        self.host, self.port = parsed.hostname, parsed.port or 80
        self.host_header = f"{self.host}:{self.port}".encode()
        self.idle: list[Connection] = []
        self.opened = 0

    async def connect(self) -> Connection:
        """A new connection (counted in `opened`)."""
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(lambda: Connection(self.host_header), self.host, self.port)
        self.opened += 1
        return conn

    async def acquire(self) -> Connection:
        """An idle connection, or a new one."""
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed:
                return conn
        return await self.connect()

    def release(self, conn: Connection):
        """Give a connection back after a complete answer."""
        if not conn.closed:
            self.idle.append(conn)

    async def preconnect(self, n: int):
        """Open n connections now, so that the measured phase pays no TCP handshake."""
        self.idle.extend(await asyncio.gather(*(self.connect() for _ in range(n))))

    async def request(self, method, path, body=b"", headers=None):
        """(status, body bytes) on a pooled connection; a broken connection is dropped, not reused."""
        conn = await self.acquire()
        try:
            answer = await conn.request(method, path, body, headers)
        except BaseException:
            conn.close()
            raise
        self.release(conn)
        return answer

    async def call(self, method, path, payload=None, token=None, headers=None):
        """A JSON request: (status, parsed JSON or None) as an Answer (its retry_after kept)."""
        hdrs = dict(headers or {})
        body = b""
        if payload is not None:
            body = json.dumps(payload).encode()
            hdrs["Content-Type"] = "application/json"
        if token:
            hdrs["Authorization"] = f"Bearer {token}"
        answer = await self.request(method, path, body, hdrs)
        status, raw = answer
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = raw
        return Answer.of(status, parsed, answer.retry_after)

    def close(self):
        """Close every idle connection."""
        for conn in self.idle:
            conn.close()
        self.idle.clear()
