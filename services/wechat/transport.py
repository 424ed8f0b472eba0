"""The HTTP client of every call to WeChat (WeChat Pay API v3 and the open API): Tornado's curl client.

One `CurlAsyncHTTPClient` per process and per base (built once, closed at shutdown), on libcurl through pycurl:
kept-alive connections reused by every call, HTTP parsing, TLS, proxies and the size limit in libcurl's C code. It
replaced one shared httpx client because, measured on the order flow (docs/benchmarks.md, "Issue 17, item 2"),
httpx's pure-Python request path cost some 3 million instructions a call, about a fifth of a flow's Python work;
the same call through libcurl costs well under half that.

What the calls rely on, set once here:
- time limits: 3 s to connect, 10 s for the whole call, connecting included (the open API's: 5 s); a call
  waiting for one of the `MAX_CALLS` transfers in flight gives up after the connect limit;
- TLS verified against certifi's bundle (as httpx and the WeChat Pay SDK do), whatever libcurl was built with;
- the proxy variables (`HTTPS_PROXY`, `HTTP_PROXY`, `ALL_PROXY`, `NO_PROXY`, lower or upper case as libcurl reads
  them) are honoured by libcurl itself;
- an answer longer than `max_bytes` (declared or counted) is refused by libcurl unread and fails as `TooLarge`;
- every call carries `X-Request-ID`, the id of the request or job round it serves.
A failure to connect, a timeout, a broken connection or an answer too large raises `TransportError`; any answer
with a status (4xx and 5xx included) is returned as an `Answer`.
"""
from __future__ import annotations

import logging
from urllib.parse import urlsplit

import certifi
import pycurl
from tornado.curl_httpclient import CurlAsyncHTTPClient, CurlError
from tornado.httpclient import HTTPClientError, HTTPRequest
from tornado.httputil import HTTPHeaders

from telemetry.context import current_request_id

CONNECT_TIMEOUT, CALL_TIMEOUT = 3.0, 10.0  # seconds, connecting included
MAX_CALLS = 64  # transfers in flight at once per client; more wait in Tornado's queue (bounded by CONNECT_TIMEOUT)
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # an API answer is a few KiB (the certificate list, a bill: a few KiB more)
_CURLE_FILESIZE_EXCEEDED = 63

# Tornado turns on libcurl's VERBOSE trace (every header and request body: openids, signatures) for each handle it
# makes while its logger is enabled for DEBUG. The transport keeps that logger above DEBUG itself, so that no logging
# set-up (a test's DEBUG capture, an operator's LOG_LEVEL=DEBUG) can put a WeChat call's body into a log.
logging.getLogger("tornado.curl_httpclient").setLevel(logging.INFO)


class TransportError(Exception):
    """No answer: the connection failed or broke, the call timed out, or the answer was refused as too large."""


class TooLarge(TransportError):
    """The answer was longer than the call accepts."""


class Answer:
    """An HTTP answer: status, headers (case-insensitive), body bytes; `text` decodes them (UTF-8)."""

    __slots__ = ("status_code", "headers", "content", "path")

    def __init__(self, status_code: int, headers: HTTPHeaders, content: bytes, path: str):
        self.status_code = status_code
        self.headers = headers
        self.content = content
        self.path = path

    @property
    def text(self) -> str:
        """The body as text (WeChat's answers are UTF-8 JSON)."""
        return self.content.decode("utf-8", errors="replace")


class WeChatHTTP:
    """The process's client for one WeChat base URL; `fetch` is the one call, the rest serve the WeChat Pay SDK."""

    def __init__(self, user_agent: str = "gym-payments", check_answer=None, call_timeout: float = CALL_TIMEOUT):
        self.user_agent = user_agent
        self.call_timeout = call_timeout
        self.check_answer = check_answer  # async (answer) -> None, may raise: sees every answer before the caller
        self._client = CurlAsyncHTTPClient(force_instance=True, max_clients=MAX_CALLS)

    async def fetch(self, method: str, url: str, headers: dict | None = None, body: bytes | str | None = None, *,
                    max_bytes: int = MAX_ANSWER_BYTES, decompress: bool = True) -> Answer:
        """One call; `decompress=False` returns the body as served (a gzip bill whose hash is of those bytes)."""
        headers = dict(headers or {})
        rid = current_request_id()
        if rid:
            headers["X-Request-ID"] = rid
        headers.setdefault("User-Agent", self.user_agent)
        if body is None and method in ("POST", "PUT", "PATCH"):
            body = b""
        request = HTTPRequest(url, method=method, headers=headers, body=body, connect_timeout=CONNECT_TIMEOUT,
                              request_timeout=self.call_timeout, follow_redirects=False, decompress_response=decompress,
                              validate_cert=True, ca_certs=certifi.where(), allow_nonstandard_methods=True,
                              prepare_curl_callback=lambda curl: curl.setopt(pycurl.MAXFILESIZE, max_bytes))
        try:
            response = await self._client.fetch(request, raise_error=False)
        except CurlError as e:
            if e.errno == _CURLE_FILESIZE_EXCEEDED:
                raise TooLarge(f"answer over {max_bytes} bytes refused") from e
            raise TransportError(f"curl error {e.errno}") from e
        except HTTPClientError as e:  # 599: timed out (also waiting in the queue), or closed
            raise TransportError(e.message or "no answer") from e
        answer = Answer(response.code, response.headers, response.body or b"", urlsplit(request.url).path)
        if self.check_answer is not None:
            await self.check_answer(answer)
        return answer

    # The WeChat Pay SDK's core calls these (the httpx-style subset it uses).
    async def get(self, url, headers=None, **_):
        """GET for the SDK."""
        return await self.fetch("GET", url, headers)

    async def post(self, url, content=None, headers=None, data=None, files=None, **_):
        """POST for the SDK (JSON `content`; this service sends no form data or files)."""
        if data is not None or files is not None:
            raise TransportError("form and file uploads are not used by this service")
        return await self.fetch("POST", url, headers, content)

    async def put(self, url, content=None, headers=None, **_):
        """PUT for the SDK."""
        return await self.fetch("PUT", url, headers, content)

    async def patch(self, url, content=None, headers=None, **_):
        """PATCH for the SDK."""
        return await self.fetch("PATCH", url, headers, content)

    async def delete(self, url, headers=None, **_):
        """DELETE for the SDK."""
        return await self.fetch("DELETE", url, headers)

    async def aclose(self):
        """Close the client and its connections."""
        self._client.close()
