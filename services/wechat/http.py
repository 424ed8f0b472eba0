"""A lean HTTP/1.1 client for WeChat Pay's API: kept-alive connections, one request at a time on each, nothing else.

The SDK (wechatpayv3) builds and signs each request and reads the answer; it only needs `get`/`post`/... that take
`url=`, `content=` and `headers=` and answer `status_code`, `headers`, `text` and `content`. httpx did that for it at
about a sixth of an order flow's CPU (its request and response models, its connection pool's bookkeeping and anyio
under it); this client parses the status line, the headers and a Content-Length, chunked or close-delimited body,
and nothing more. It raises httpx's own exceptions (ConnectError, ConnectTimeout, ReadTimeout, RemoteProtocolError,
...), so every caller's `except httpx.HTTPError` stays as it was.

Not here, on purpose: redirects (WeChat Pay never redirects an API call), cookies, proxies (when HTTPS_PROXY or its
kin is set the gateway keeps httpx, which honours them), HTTP/2, retries (a request that fails is WeChat Pay not
answering: the callers' rules for that apply, as before). A connection that was closed while idle is never reused.
"""
from __future__ import annotations

import asyncio
import ssl
from urllib.parse import urlsplit

import httpx

MAX_HEAD_BYTES = 64 * 1024
MAX_BODY_BYTES = 8 * 1024 * 1024  # the certificate list is the largest answer, a few KiB
MAX_IDLE = 32  # connections kept per client


class Headers(dict):
    """An answer's headers; `get` ignores case, as HTTP does (names stored lower-case; a repeated one joined)."""

    def get(self, name, default=None):
        return super().get(name.lower(), default)

    def __getitem__(self, name):
        return super().__getitem__(name.lower())

    def __contains__(self, name):
        return super().__contains__(name.lower())


class Response:
    """What the SDK and the gateway read of an answer."""

    __slots__ = ("status_code", "headers", "content", "path")

    def __init__(self, status_code: int, headers: Headers, content: bytes, path: str):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.path = path

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")


class _Connection(asyncio.Protocol):
    """One connection; one request at a time; the answer parsed as it arrives."""

    def __init__(self):
        self.transport = None
        self.buf = bytearray()
        self.waiter = None
        self.head = None  # (status, headers, content length or None, chunked, close)
        self.closed = False
        self.no_body = False

    def connection_made(self, transport):
        self.transport = transport

    def data_received(self, data):
        self.buf += data
        if self.waiter is not None and not self.waiter.done():
            try:
                self._parse()
            except httpx.HTTPError as e:
                self.waiter.set_exception(e)
                self.close()
        elif self.waiter is None:  # bytes nobody asked for: the connection cannot be trusted any more
            self.close()

    def eof_received(self):
        self.closed = True
        return False  # close the transport

    def connection_lost(self, exc):
        self.closed = True
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        head = self.head
        if head is not None and head[2] is None and not head[3] and not self.no_body:
            waiter.set_result((head[0], head[1], bytes(self.buf)))  # a body delimited by the close
        elif head is None and not self.buf:
            waiter.set_exception(httpx.RemoteProtocolError("Server disconnected without sending a response."))
        else:
            waiter.set_exception(httpx.ReadError(f"connection lost mid-answer: {exc or 'closed'}"))

    def _parse(self):
        if self.head is None:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buf) > MAX_HEAD_BYTES:
                    raise httpx.RemoteProtocolError("answer head too large")
                return
            lines = bytes(self.buf[:end]).decode("latin-1").split("\r\n")
            del self.buf[:end + 4]
            parts = lines[0].split(" ", 2)
            if len(parts) < 2 or not parts[0].startswith("HTTP/1.") or not parts[1].isdigit():
                raise httpx.RemoteProtocolError(f"bad status line {lines[0][:80]!r}")
            status = int(parts[1])
            headers = Headers()
            for line in lines[1:]:
                name, sep, value = line.partition(":")
                if not sep:
                    raise httpx.RemoteProtocolError("bad header line")
                name, value = name.strip().lower(), value.strip()
                headers[name] = f"{headers[name]}, {value}" if name in headers else value
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length = None
            if not chunked and "content-length" in headers:
                try:
                    length = int(headers["content-length"])
                except ValueError:
                    raise httpx.RemoteProtocolError("bad Content-Length") from None
                if length < 0 or length > MAX_BODY_BYTES:
                    raise httpx.RemoteProtocolError("Content-Length out of range")
            if self.no_body or status in (204, 304) or 100 <= status < 200:
                length, chunked = 0, False
            close = headers.get("connection", "").lower() == "close" or parts[0] == "HTTP/1.0"
            self.head = (status, headers, length, chunked, close)
        status, headers, length, chunked, close = self.head
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
            if len(self.buf) > MAX_BODY_BYTES:
                raise httpx.RemoteProtocolError("answer too large")
            return  # until the connection closes
        if close or self.buf:
            self.close()  # asked to, or more bytes than the answer: never reused
        self.waiter.set_result((status, headers, body))

    def _dechunk(self):
        """The whole chunked body once it has arrived (then removed from the buffer), else None."""
        pos, parts, size_total = 0, [], 0
        while True:
            eol = self.buf.find(b"\r\n", pos)
            if eol < 0:
                return None
            try:
                size = int(bytes(self.buf[pos:eol]).split(b";")[0].strip(), 16)
            except ValueError:
                raise httpx.RemoteProtocolError("bad chunk size") from None
            size_total += size
            if size < 0 or size_total > MAX_BODY_BYTES:
                raise httpx.RemoteProtocolError("answer too large")
            if size == 0:  # then trailer lines (none expected), each ending in CRLF, and an empty line
                if self.buf[eol + 2:eol + 4] == b"\r\n":
                    end = eol + 4
                else:
                    end = self.buf.find(b"\r\n\r\n", eol + 2)
                    if end < 0:
                        return None
                    end += 4
                del self.buf[:end]
                return b"".join(parts)
            start = eol + 2
            if len(self.buf) < start + size + 2:
                return None
            parts.append(bytes(self.buf[start:start + size]))
            pos = start + size + 2

    def usable(self) -> bool:
        """Idle and still open (a connection the server closed while it sat idle is not)."""
        return not self.closed and not self.buf and self.transport is not None and not self.transport.is_closing()

    def close(self):
        self.closed = True
        if self.transport is not None:
            self.transport.close()


class LeanClient:
    """Kept-alive connections to one origin (the gateway's); any number of requests in flight, one per connection.

    `connect_timeout` bounds opening a connection (TLS included); `read_timeout` bounds the wait for the whole answer
    once the request is written. `request_hooks` get the dict of the outgoing headers to add to (the request id);
    `response_hooks` are awaited with each Response before it is returned (the answer's signature check).
    """

    def __init__(self, base_url: str, connect_timeout: float, read_timeout: float, request_hooks=(),
                 response_hooks=()):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        default_port = self.port == (443 if parts.scheme == "https" else 80)
        self.host_header = self.host if default_port else f"{self.host}:{self.port}"
        self.origin = f"{parts.scheme}://{parts.netloc}"
        self.connect_timeout, self.read_timeout = connect_timeout, read_timeout
        self.request_hooks = list(request_hooks)
        self.response_hooks = list(response_hooks)
        self._ssl = _tls_context() if parts.scheme == "https" else None
        self._idle: list[_Connection] = []
        self._closed = False

    async def _connect(self) -> _Connection:
        loop = asyncio.get_running_loop()
        try:
            _, conn = await asyncio.wait_for(loop.create_connection(
                _Connection, self.host, self.port, ssl=self._ssl,
                server_hostname=self.host if self._ssl else None), self.connect_timeout)
        except asyncio.TimeoutError:
            raise httpx.ConnectTimeout(f"connecting to {self.origin} timed out") from None
        except (OSError, ssl.SSLError) as e:
            raise httpx.ConnectError(f"connecting to {self.origin} failed: {e}") from e
        return conn

    def _take_idle(self):
        while self._idle:
            conn = self._idle.pop()
            if conn.usable():
                return conn
        return None

    async def request(self, method: str, url: str, content=None, headers=None) -> Response:
        """Send one request to this client's origin and read the whole answer."""
        if self._closed:
            raise httpx.ConnectError("client closed")
        if url.startswith(self.origin):
            target = url[len(self.origin):] or "/"
        elif url.startswith("/"):
            target = url
        else:
            raise ValueError(f"{url!r} is not on {self.origin}")
        body = content.encode("utf-8") if isinstance(content, str) else (content or b"")
        outgoing = {"Host": self.host_header, "Accept-Encoding": "identity"}
        for name, value in (headers or {}).items():
            outgoing[name] = value
        if body or method in ("POST", "PUT", "PATCH"):
            outgoing["Content-Length"] = str(len(body))
        for hook in self.request_hooks:
            hook(outgoing)
        head = "".join(f"{name}: {value}\r\n" for name, value in outgoing.items())
        payload = f"{method} {target} HTTP/1.1\r\n{head}\r\n".encode("utf-8") + body
        conn = self._take_idle() or await self._connect()
        conn.no_body = method == "HEAD"
        conn.waiter = asyncio.get_running_loop().create_future()
        conn.transport.write(payload)
        try:
            status, answer_headers, answer = await asyncio.wait_for(conn.waiter, self.read_timeout)
        except asyncio.TimeoutError:
            conn.close()
            raise httpx.ReadTimeout(f"{method} {target.split('?')[0]}: no answer within {self.read_timeout:g}s") \
                from None
        except BaseException:
            conn.close()
            raise
        conn.waiter, conn.head = None, None
        if conn.usable() and not self._closed and len(self._idle) < MAX_IDLE:
            self._idle.append(conn)
        else:
            conn.close()
        response = Response(status, answer_headers, answer, target.split("?", 1)[0])
        for hook in self.response_hooks:
            await hook(response)
        return response

    async def get(self, url, headers=None, **_):
        return await self.request("GET", url, headers=headers)

    async def post(self, url, content=None, headers=None, data=None, files=None, **_):
        if files is not None or data is not None:
            raise NotImplementedError("form and file uploads are not used by this service")
        return await self.request("POST", url, content=content, headers=headers)

    async def put(self, url, content=None, headers=None, **_):
        return await self.request("PUT", url, content=content, headers=headers)

    async def patch(self, url, content=None, headers=None, **_):
        return await self.request("PATCH", url, content=content, headers=headers)

    async def delete(self, url, headers=None, **_):
        return await self.request("DELETE", url, headers=headers)

    async def aclose(self):
        """Close every idle connection (requests in flight close theirs when they end)."""
        self._closed = True
        while self._idle:
            self._idle.pop().close()


def _tls_context() -> ssl.SSLContext:
    """Certificates verified against the same CA bundle httpx used (certifi's), hostnames checked."""
    try:
        import certifi
        return ssl.create_default_context(cafile=certifi.where())
    except ImportError:  # pragma: no cover - certifi comes with httpx
        return ssl.create_default_context()
