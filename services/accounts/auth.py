"""Logging in: parents by wx.login code, operators by password; and which operator a token names."""
from __future__ import annotations

import datetime as dt
import logging

import errors
from models import Operator, User, utcnow

from ..audit import mask_value
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
    if not openid:
        raise errors.service_unavailable("微信登录服务返回异常，请稍后重试")
    now = utcnow()
    await User.insert(openid=openid, unionid=session.get("unionid"), created_at=now, last_login_at=now).on_conflict(
        update={User.last_login_at: now}).aio_execute()
    user = await User.select().where(User.openid == openid).aio_get()
    ttl = tokens.USER_TOKEN_SECONDS
    return {"token": tokens.issue(ctx.settings.secret_key, "user", user.id, ttl), "expires_in": ttl,
            "user": {"id": user.id, "openid_masked": mask_value(openid)}}


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
