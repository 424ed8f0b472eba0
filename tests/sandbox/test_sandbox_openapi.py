"""The mini-program open API: wx.login codes, access tokens and subscribe messages."""
from __future__ import annotations

from urllib.parse import urlencode

from tests.harness import http_json


def get(sandbox, path, **query):
    """GET an open-API path; returns (status, JSON)."""
    status, body, _ = http_json("GET", f"{sandbox.url}{path}?{urlencode(query)}")
    return status, body


def session(sandbox, code, secret=None, appid=None):
    """Exchange a code at /sns/jscode2session."""
    return get(sandbox, "/sns/jscode2session", appid=appid or sandbox.env["WECHAT_APPID"],
               secret=secret or sandbox.env["WECHAT_APP_SECRET"], js_code=code, grant_type="authorization_code")


def token(sandbox):
    """A fresh access token from /cgi-bin/token."""
    status, body = get(sandbox, "/cgi-bin/token", grant_type="client_credential",
                       appid=sandbox.env["WECHAT_APPID"], secret=sandbox.env["WECHAT_APP_SECRET"])
    assert status == 200 and body["expires_in"] == 7200
    return body["access_token"]


def send(sandbox, access_token, body):
    """POST a subscribe message; returns the JSON answer."""
    status, answer, _ = http_json("POST", f"{sandbox.url}/cgi-bin/message/subscribe/send?access_token={access_token}",
                                  body)
    assert status == 200
    return answer


def test_login_code_flow(sandbox):
    minted = sandbox.control("POST", "/sandbox/wx/login", {})
    assert minted["openid"].startswith("o") and len(minted["openid"]) == 28
    assert session(sandbox, minted["code"], secret="0" * 32)[1] == {"errcode": 40125, "errmsg": "invalid appsecret"}
    status, body = session(sandbox, minted["code"])
    assert status == 200 and body["openid"] == minted["openid"] and body["session_key"]
    assert session(sandbox, minted["code"])[1] == {"errcode": 40163, "errmsg": "code been used"}
    assert session(sandbox, "no-such-code")[1] == {"errcode": 40029, "errmsg": "invalid code"}
    same = sandbox.control("POST", "/sandbox/wx/login", {"openid": minted["openid"]})
    assert same["code"] != minted["code"] and session(sandbox, same["code"])[1]["openid"] == minted["openid"]


def test_access_tokens(sandbox):
    status, bad = get(sandbox, "/cgi-bin/token", grant_type="client_credential", appid=sandbox.env["WECHAT_APPID"],
                      secret="wrong")
    assert status == 200 and bad["errcode"] == 40125
    assert get(sandbox, "/cgi-bin/token", grant_type="client_credential", appid="wx0", secret="x")[1]["errcode"] == 40013
    stable = {"grant_type": "client_credential", "appid": sandbox.env["WECHAT_APPID"],
              "secret": sandbox.env["WECHAT_APP_SECRET"]}
    first = http_json("POST", f"{sandbox.url}/cgi-bin/stable_token", stable)[1]
    second = http_json("POST", f"{sandbox.url}/cgi-bin/stable_token", stable)[1]
    assert first["access_token"] == second["access_token"] and 7000 < second["expires_in"] <= 7200
    forced = http_json("POST", f"{sandbox.url}/cgi-bin/stable_token", {**stable, "force_refresh": True})[1]
    assert forced["access_token"] != first["access_token"]
    assert http_json("POST", f"{sandbox.url}/cgi-bin/stable_token", {**stable, "secret": "x"})[1]["errcode"] == 40125


def test_subscribe_messages_are_recorded(sandbox):
    openid = sandbox.control("POST", "/sandbox/wx/login", {})["openid"]
    access_token = token(sandbox)
    message = {"touser": openid, "template_id": "TPL-booking", "page": "pages/order/index",
               "data": {"thing1": {"value": "体验课"}, "time2": {"value": "2026-12-01 10:00"}}}
    answer = send(sandbox, access_token, message)
    assert answer["errcode"] == 0 and answer["errmsg"] == "ok"
    assert send(sandbox, "not-a-token", message)["errcode"] == 40001
    assert send(sandbox, access_token, {**message, "touser": "oUnknown"})["errcode"] == 40003
    recorded = [m for m in sandbox.control("GET", "/sandbox/messages")["items"] if m["touser"] == openid]
    assert [m["errcode"] for m in recorded] == [0, 40001]
    assert recorded[0]["data"] == message["data"] and recorded[0]["template_id"] == "TPL-booking"

    sandbox.control("POST", "/sandbox/wx/tokens/expire")
    assert send(sandbox, access_token, message)["errcode"] == 42001
    assert send(sandbox, token(sandbox), message)["errcode"] == 0


def test_open_api_faults(sandbox):
    minted = sandbox.control("POST", "/sandbox/wx/login", {})
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/sns/jscode2session", "status": 500})
    assert session(sandbox, minted["code"]) == (200, {"errcode": -1, "errmsg": "system error"})
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/sns/", "status": 500, "wechat_style": False})
    assert session(sandbox, minted["code"])[0] == 500
    assert session(sandbox, minted["code"])[1]["openid"] == minted["openid"], "faults do not use up the code"
    sandbox.control("POST", "/sandbox/faults", {"path_prefix": "/cgi-bin/message", "errcode": 45009,
                                                "errmsg": "reach max api daily quota limit"})
    assert send(sandbox, token(sandbox), {})["errcode"] == 45009
