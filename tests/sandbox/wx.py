"""Helpers of the sandbox tests: wechatpayv3 clients on the sandbox, a notification receiver, raw signed calls."""
from __future__ import annotations

import asyncio
import functools
import json
import secrets
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
from wechatpayv3.async_ import AsyncWeChatPay, WeChatPayType
from wechatpayv3.utils import build_authorization, load_private_key, rsa_sign

from tests.harness import wait_until

_HTTP = httpx.Client(timeout=10)  # one client: building one per call costs tens of milliseconds


def read(path):
    """A text file's content."""
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def new_trade_no(prefix="T"):
    """A fresh out_trade_no (32 chars max)."""
    return prefix + uuid.uuid4().hex[:24]


def make_client(sandbox, mode, cert_dir=None, notify_url="http://127.0.0.1:9/unused", timeout=(5, 10)):
    """An AsyncWeChatPay (MINIPROG) aimed at the sandbox: 'pubkey' mode, or 'cert' mode caching in cert_dir;
    `timeout` is (connect, read) seconds."""
    env = sandbox.env
    extra = {}
    if mode == "pubkey":
        extra = {"public_key": read(env["WECHATPAY_PUBLIC_KEY_FILE"]), "public_key_id": env["WECHATPAY_PUBLIC_KEY_ID"]}
    else:
        extra = {"cert_dir": str(cert_dir)}
    client = AsyncWeChatPay(
        wechatpay_type=WeChatPayType.MINIPROG, mchid=env["WECHATPAY_MCHID"],
        private_key=read(env["WECHATPAY_PRIVATE_KEY_FILE"]), cert_serial_no=env["WECHATPAY_CERT_SERIAL_NO"],
        appid=env["WECHAT_APPID"], apiv3_key=read(env["WECHATPAY_APIV3_KEY_FILE"]), notify_url=notify_url,
        timeout=timeout, **extra)
    client._core._gate_way = sandbox.url
    return client


def with_client(sandbox, mode, cert_dir=None, notify_url="http://127.0.0.1:9/unused", timeout=(5, 10)):
    """Run `work(client)` inside an entered client; returns (result, client)."""
    def runner(work):
        async def go():
            client = make_client(sandbox, mode, cert_dir, notify_url, timeout)
            async with client:
                return await work(client), client
        return asyncio.run(go())
    return runner


def jsapi_order(sandbox, out_trade_no, notify_url, total=20000, **extra):
    """Keyword arguments of wechatpayv3's pay() for a JSAPI (mini-program) order."""
    return dict(description="体验课 Trial lesson", out_trade_no=out_trade_no, amount={"total": total, "currency": "CNY"},
                payer={"openid": "o" + secrets.token_urlsafe(20)[:27]}, notify_url=notify_url, **extra)


@functools.lru_cache(maxsize=4)
def _merchant_key(path):
    return load_private_key(read(path))  # parsing checks the RSA key: slow enough to keep


def signed_call(sandbox, method, path, body=None, sent_body=None, timestamp=None, serial=None, headers=None):
    """A request signed by the merchant key with wechatpayv3's own signer; `sent_body` may differ (tampering)."""
    env = sandbox.env
    key = _merchant_key(env["WECHATPAY_PRIVATE_KEY_FILE"])
    text = "" if body is None else (body if isinstance(body, str) else json.dumps(body))
    if timestamp is None:
        auth = build_authorization(path, method, env["WECHATPAY_MCHID"], serial or env["WECHATPAY_CERT_SERIAL_NO"],
                                   key, data=text)
    else:
        nonce = uuid.uuid4().hex.upper()
        signature = rsa_sign(key, f"{method}\n{path}\n{timestamp}\n{nonce}\n{text}\n")
        auth = (f'WECHATPAY2-SHA256-RSA2048 mchid="{env["WECHATPAY_MCHID"]}",nonce_str="{nonce}",'
                f'signature="{signature}",timestamp="{timestamp}",serial_no="{serial or env["WECHATPAY_CERT_SERIAL_NO"]}"')
    hdrs = {"Authorization": auth, "Accept": "application/json", "Content-Type": "application/json", **(headers or {})}
    content = (sent_body if sent_body is not None else text).encode()
    return _HTTP.request(method, sandbox.url + path, content=content if method != "GET" else None, headers=hdrs)


class Receiver:
    """A merchant's notify endpoint on a free port: records each POST; answers from a per-path script."""

    def __init__(self):
        self.lock = threading.Lock()
        self.requests = []
        self.scripts = {}
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with receiver.lock:
                    receiver.requests.append({"path": self.path, "headers": dict(self.headers.items()),
                                              "body": body.decode("utf-8"), "at": time.time()})
                    script = receiver.scripts.get(self.path) or []
                    status = script.pop(0) if script else 204
                payload = b"" if status < 300 else b'{"code":"FAIL","message":"not yet"}'
                self.send_response(status)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, path):
        """The absolute notify URL of `path` on this receiver."""
        return f"http://127.0.0.1:{self.port}{path}"

    def script(self, path, statuses):
        """Answer the next POSTs to `path` with `statuses` in turn (then 204)."""
        with self.lock:
            self.scripts[path] = list(statuses)

    def received(self, path):
        """Requests received on `path`, oldest first."""
        with self.lock:
            return [r for r in self.requests if r["path"] == path]

    def wait_for(self, path, count=1, timeout=10):
        """Wait until `count` requests reached `path`; returns them."""
        return wait_until(lambda: len(self.received(path)) >= count and self.received(path), timeout=timeout,
                          what=f"{count} notification(s) on {path}")

    def clear(self):
        """Forget recorded requests and scripts."""
        with self.lock:
            self.requests.clear()
            self.scripts.clear()

    def close(self):
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
