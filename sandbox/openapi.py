"""The mini-program side of WeChat: wx.login codes, access tokens and subscribe messages, kept in the store."""
import base64
import secrets
import time

from . import clock
from .crypto import random_text

CODE_TTL = 300  # a wx.login code lives 5 minutes (real seconds)
TOKEN_TTL = 7200
OLD_TOKEN_GRACE = 300  # a replaced access_token keeps working 5 more minutes
URLSAFE = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def error(errcode, errmsg):
    """An open-API error body (always answered with HTTP 200)."""
    return {"errcode": errcode, "errmsg": errmsg}


class MiniProgram:
    """State of the sandbox's one mini-program: codes, openids, tokens, sent messages."""

    def __init__(self, creds, store):
        self.creds = creds
        self.store = store
        self.codes = {}  # code -> {"openid", "expires", "used"}
        for code in store.load("wx_code"):
            if code["expires"] > time.time():
                self.codes[code["code"]] = code
            else:  # an expired code answers like an unknown one: nothing to keep
                store.delete("wx_code", code["code"])
        self.openids = {o["openid"] for o in store.load("wx_openid")}
        self.tokens = {t["token"]: t["expires"] for t in store.load("wx_token")}  # token -> expiry (time.time())
        self.revoked = set()  # tokens WeChat no longer accepts, although the stable token cache still serves them
        self.stable_token = next(iter(store.load("wx_stable_token")), {}).get("token")
        self.messages = store.load("wx_message")
        self._msgid = max([1000] + [m["msgid"] for m in self.messages if m.get("msgid")])

    def _save_code(self, code):
        self.store.put("wx_code", code, {"code": code, **self.codes[code]})

    def _save_token(self, token):
        self.store.put("wx_token", token, {"token": token, "expires": self.tokens[token]})

    def login(self, openid=None):
        """Mint a wx.login code for `openid` (a new random openid when None)."""
        openid = openid or "o" + random_text(27, URLSAFE)
        code = random_text(32, URLSAFE)
        self.codes[code] = {"openid": openid, "expires": time.time() + CODE_TTL, "used": False}
        with self.store.atomic():
            self._save_code(code)
            if openid not in self.openids:
                self.openids.add(openid)
                self.store.put("wx_openid", openid, {"openid": openid})
        return {"code": code, "openid": openid, "expires_in": CODE_TTL}

    def _credentials_error(self, appid, secret):
        if not appid:
            return error(41002, "appid missing")
        if not secret:
            return error(41004, "appsecret missing")
        if appid != self.creds.appid:
            return error(40013, "invalid appid")
        if secret != self.creds.app_secret:
            return error(40125, "invalid appsecret")
        return None

    def code_to_session(self, appid, secret, js_code, grant_type):
        """GET /sns/jscode2session: the openid and a session_key for a fresh code."""
        if appid != self.creds.appid or secret != self.creds.app_secret:
            return error(40125, "invalid appsecret")
        if grant_type != "authorization_code":
            return error(40002, "invalid grant_type")
        if not js_code:
            return error(41008, "missing code")
        entry = self.codes.get(js_code)
        if entry is None or entry["expires"] < time.time():
            return error(40029, "invalid code")
        if entry["used"]:
            return error(40163, "code been used")
        entry["used"] = True
        self._save_code(js_code)
        return {"session_key": base64.b64encode(secrets.token_bytes(16)).decode("ascii"), "openid": entry["openid"]}

    def _new_token(self):
        token = random_text(136, URLSAFE)
        self.tokens[token] = time.time() + TOKEN_TTL
        self._save_token(token)
        return token

    def _retire(self, token):
        if token in self.tokens and self.tokens[token] > time.time() + OLD_TOKEN_GRACE:
            self.tokens[token] = time.time() + OLD_TOKEN_GRACE
            self._save_token(token)

    def access_token(self, grant_type, appid, secret):
        """GET /cgi-bin/token: a new token each call; earlier ones expire within 5 minutes."""
        if grant_type != "client_credential":
            return error(40002, "invalid grant_type")
        failed = self._credentials_error(appid, secret)
        if failed:
            return failed
        with self.store.atomic():
            for token in list(self.tokens):
                self._retire(token)
            return {"access_token": self._new_token(), "expires_in": TOKEN_TTL}

    def stable_access_token(self, body):
        """POST /cgi-bin/stable_token: the same token while it lives, unless force_refresh."""
        if not isinstance(body, dict):
            return error(47001, "data format error")
        if body.get("grant_type") != "client_credential":
            return error(40002, "invalid grant_type")
        failed = self._credentials_error(body.get("appid"), body.get("secret"))
        if failed:
            return failed
        current = self.stable_token
        alive = current is not None and self.tokens.get(current, 0) > time.time() + 1
        if body.get("force_refresh") is True or not alive:
            with self.store.atomic():
                if current:
                    self._retire(current)
                self.stable_token = current = self._new_token()
                self.store.put("wx_stable_token", "current", {"token": current})
        return {"access_token": current, "expires_in": int(self.tokens[current] - time.time())}

    def expire_tokens(self):
        """Make every access token expired now (control API), to exercise token refresh."""
        with self.store.atomic():
            for token in self.tokens:
                if self.tokens[token] >= time.time():
                    self.tokens[token] = time.time() - 1
                    self._save_token(token)
        return len(self.tokens)

    def revoke_tokens(self):
        """Make every current access token invalid (40001) while the stable-token cache keeps serving it until a
        force_refresh, as WeChat does when, for example, the app secret was reset (control API)."""
        self.revoked.update(self.tokens)
        return len(self.revoked)

    def check_token(self, token):
        """None when `token` is valid, else the error WeChat answers."""
        if not token:
            return error(41001, "access_token missing")
        expiry = self.tokens.get(token)
        if expiry is None or token in self.revoked:
            return error(40001, "invalid credential, access_token is invalid or not latest")
        if expiry < time.time():
            return error(42001, "access_token expired")
        return None

    def send_subscribe(self, token, body):
        """POST /cgi-bin/message/subscribe/send: check, record and accept a subscribe message."""
        result = self.check_token(token)
        if result is None:
            result = self._check_message(body)
        record = {"at": clock.iso(clock.now()), "errcode": None}
        if isinstance(body, dict):
            record.update({k: body.get(k) for k in ("touser", "template_id", "page", "data",
                                                     "miniprogram_state", "lang")})
        if result is None:
            self._msgid += 1
            result = {"errcode": 0, "errmsg": "ok", "msgid": self._msgid}
            record["msgid"] = self._msgid
        record["errcode"], record["errmsg"] = result["errcode"], result["errmsg"]
        self.messages.append(record)
        self.store.put("wx_message", str(len(self.messages)), record)
        return result

    def _check_message(self, body):
        if not isinstance(body, dict):
            return error(47001, "data format error")
        if not body.get("touser") or body["touser"] not in self.openids:
            return error(40003, "invalid openid")
        if not isinstance(body.get("template_id"), str) or not body["template_id"]:
            return error(40037, "invalid template_id")
        data = body.get("data")
        if not isinstance(data, dict) or not all(isinstance(v, dict) and "value" in v for v in data.values()):
            return error(47003, "argument invalid! data.value is empty")
        return None
