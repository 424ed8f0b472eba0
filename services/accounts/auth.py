"""Logging in: parents by wx.login code, operators by password; and which operator a token names."""
from __future__ import annotations

import datetime as dt
import logging

import errors
from models import Operator, User, personal_data, utcnow

from ..wechat.open_api import OpenAPIError
from . import lockout, passwords, roles, tokens

log = logging.getLogger("gym.auth")

async def login_user(ctx, body: dict) -> dict:
    """Exchange a wx.login code for our token; 401 for a bad code, 503 when WeChat is unreachable."""
    code = body.get("code")
    if not isinstance(code, str) or not code.strip() or len(code) > 256:
        raise errors.invalid_request("code 必须是 wx.login 返回的字符串", field="code")
    try:
        session = await ctx.open_api.code_to_session(code.strip())
    except OpenAPIError as e:
        if e.unreachable:
            log.warning("jscode2session unreachable: %s", e)
            raise errors.service_unavailable("微信登录服务暂时不可用，请稍后重试") from e
        raise errors.unauthenticated("登录凭证无效，请重新登录") from e
    openid = session.get("openid")
    if not isinstance(openid, str) or not openid or len(openid) > 128:
        raise errors.service_unavailable("微信登录服务返回异常，请稍后重试")
    unionid = session.get("unionid")
    user_id = await find_or_create_user(openid, unionid if isinstance(unionid, str) and len(unionid) <= 128 else None)
    ttl = tokens.USER_TOKEN_SECONDS
    return {"token": tokens.issue(ctx.settings.secret_key, "user", user_id, ttl), "expires_in": ttl,
            "user": {"id": user_id, "openid_masked": personal_data.mask_value(openid)}}


async def find_or_create_user(openid: str, unionid: str | None = None) -> int:
    """The id of the parent with this openid, made on the first login.

    Found by the openid's keyed hash under every loaded data key: while a key change is under way a row may still
    hold the previous key's, and it is re-encrypted under the current key here (a row found by the current key's is
    left as it is). A new parent is inserted with the current key's; the unique hash makes two first logins one row.
    """
    hashes = personal_data.lookup_hashes(openid)
    now = utcnow()
    found = await User.select(User.id, User.openid_hash).where(User.openid_hash.in_(hashes)).aio_execute()
    found = sorted(found, key=lambda u: hashes.index(u.openid_hash))
    if not found:
        await User.insert(created_at=now, last_login_at=now, **personal_data.user_columns(openid, unionid)).on_conflict(
            update={User.last_login_at: now}).aio_execute()
        return (await User.select(User.id).where(User.openid_hash == hashes[0]).aio_get()).id
    user = found[0]
    if user.openid_hash == hashes[0]:
        await User.update(last_login_at=now).where(User.id == user.id).aio_execute()
    else:  # the previous key's: re-encrypted now, unless the rotation did it meanwhile
        columns = personal_data.user_columns(openid, unionid)
        if not unionid:
            columns.pop("unionid_encrypted")  # keep the one stored: rotate-data-key re-encrypts it
        await User.update(last_login_at=now, **columns).where(
            (User.id == user.id) & (User.openid_hash == user.openid_hash)).aio_execute()
    return user.id


async def login_operator(ctx, body: dict, actor) -> dict:
    """Check an operator's password: 401 on any mismatch, each counted against the username and audited
    (services.accounts.lockout); 429 while the username is locked; 503 when the hashing threads are full."""
    username, password = body.get("username"), body.get("password")
    if not isinstance(username, str) or not isinstance(password, str) or not username or not password:
        raise errors.invalid_request("username 和 password 必填")
    await lockout.refuse_if_locked(username)
    operator = None
    ok = False
    if len(username) <= lockout.USERNAME_CHARS and len(password) <= passwords.MAX_PASSWORD_CHARS:
        operator = await Operator.select().where(Operator.username == username).aio_first()
        ok = await passwords.check_password_async(operator.password_hash if operator else None, password)
    if not ok or not operator.active:
        await lockout.record_failure(ctx, username, actor)
        raise errors.unauthenticated("用户名或密码错误")
    await lockout.refuse_if_locked(username)  # locked while the password was being checked
    await Operator.update(last_login_at=utcnow()).where(Operator.id == operator.id).aio_execute()
    ttl = tokens.OPERATOR_TOKEN_SECONDS
    return {"token": tokens.issue(ctx.settings.secret_key, "operator", operator.id, ttl), "expires_in": ttl,
            "operator": {"id": operator.id, "username": operator.username, "role": operator.role}}


async def operator_for_token(ctx, token: str, right: str | None = None) -> Operator:
    """The operator a token names, if active and (when `right` is given) holding it (services.accounts.roles);
    401 / 403 otherwise."""
    try:
        payload = tokens.claims(ctx.settings.secret_key, token, "operator")
    except errors.ServiceError:
        try:
            tokens.verify(ctx.settings.secret_key, token, "user")
        except errors.ServiceError:
            raise errors.unauthenticated() from None
        raise errors.forbidden("需要运营人员权限") from None
    operator = await Operator.select().where(Operator.id == payload["sub"]).aio_first()
    if operator is None or not operator.active:
        raise errors.unauthenticated("账号已停用")
    for cutoff in (operator.password_changed_at, operator.sessions_ended_at):
        if cutoff is not None and payload.get("iat", 0) < cutoff.replace(tzinfo=dt.timezone.utc).timestamp():
            raise errors.unauthenticated("登录已失效，请重新登录")
    if right is not None and not roles.may(operator.role, right):
        raise errors.forbidden("当前角色无权执行此操作")
    return operator


async def end_operator_sessions(ctx, token: str):
    """Log out: every token the operator holds now stops working (a valid token is needed to ask)."""
    try:
        operator_id = tokens.claims(ctx.settings.secret_key, token, "operator")["sub"]
    except errors.ServiceError:
        return
    await Operator.update(sessions_ended_at=utcnow()).where(Operator.id == operator_id).aio_execute()
