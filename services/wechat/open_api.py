"""The WeChat open API of the mini-program: code → openid, access token, subscribe messages."""
from __future__ import annotations

import asyncio
import json
import logging
import time
from urllib.parse import urlencode

from .transport import TransportError, WeChatHTTP

log = logging.getLogger("gym.wechat_open")

OPEN_API_TIMEOUT = 5.0  # seconds for a whole call (3 of them to connect)


class OpenAPIError(Exception):
    """WeChat answered with an errcode, or could not be reached (errcode None)."""

    def __init__(self, errcode, errmsg):
        super().__init__(f"{errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg

    @property
    def unreachable(self):
        """True when the failure is WeChat's side or the network, so a retry may work."""
        return self.errcode in (None, -1, 45009)


class WeChatOpenAPI:
    """A small async client of api.weixin.qq.com (or the sandbox)."""

    def __init__(self, settings):
        self.settings = settings
        self.base = settings.wechat_api_base.rstrip("/")
        # services/wechat/transport.py: one client for the process's open API calls; a parent waits on login
        self.http = WeChatHTTP(call_timeout=OPEN_API_TIMEOUT)
        self._token = None
        self._token_expires = 0.0
        self._token_lock = asyncio.Lock()

    async def close(self):
        """Close the HTTP client."""
        await self.http.aclose()

    async def _json(self, method, path, params=None, json_body=None):
        url = self.base + path + ("?" + urlencode(params) if params else "")
        body, headers = None, {}
        if json_body is not None:
            body = json.dumps(json_body, ensure_ascii=False, separators=(",", ":")).encode()
            headers = {"Content-Type": "application/json"}
        try:
            resp = await self.http.fetch(method, url, headers, body)
        except TransportError as e:
            raise OpenAPIError(None, f"network: {type(e).__name__}") from e
        if resp.status_code >= 500:
            raise OpenAPIError(None, f"HTTP {resp.status_code}")
        try:
            data = json.loads(resp.content)
        except ValueError:
            raise OpenAPIError(None, f"HTTP {resp.status_code}: not JSON") from None
        if not isinstance(data, dict):
            raise OpenAPIError(None, f"HTTP {resp.status_code}: not a JSON object")
        if data.get("errcode"):
            raise OpenAPIError(data.get("errcode"), data.get("errmsg", ""))
        return data

    async def code_to_session(self, code: str) -> dict:
        """jscode2session: {'openid', 'session_key', 'unionid'?}."""
        return await self._json("GET", "/sns/jscode2session", params={
            "appid": self.settings.wechat_appid, "secret": self.settings.wechat_app_secret,
            "js_code": code, "grant_type": "authorization_code"})

    async def access_token(self, force=False) -> str:
        """A cached stable access token, refreshed five minutes before it ends."""
        async with self._token_lock:
            if force or not self._token or time.time() > self._token_expires - 300:
                data = await self._json("POST", "/cgi-bin/stable_token", json_body={
                    "grant_type": "client_credential", "appid": self.settings.wechat_appid,
                    "secret": self.settings.wechat_app_secret, "force_refresh": bool(force)})
                self._token = data["access_token"]
                self._token_expires = time.time() + int(data.get("expires_in", 7200))
            return self._token

    async def send_subscribe_message(self, openid, template_id, data, page=None) -> dict:
        """Send a subscribe message; an expired token is refreshed once."""
        payload = {"touser": openid, "template_id": template_id, "data": data}
        if page:
            payload["page"] = page
        for attempt in range(2):
            token = await self.access_token(force=attempt > 0)
            try:
                return await self._json("POST", "/cgi-bin/message/subscribe/send",
                                        params={"access_token": token}, json_body=payload)
            except OpenAPIError as e:
                if e.errcode in (40001, 42001) and attempt == 0:
                    continue
                raise
        raise OpenAPIError(None, "unreachable")
