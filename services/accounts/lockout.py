"""Operator login lockout per username (contract §2 Operators), kept in MySQL so that it holds while Redis is down
and across every process: OPERATOR_LOGIN_MAX_FAILURES failed logins of one username within WINDOW lock it for
LOCK, whatever the password and the address. An attempt refused for the lock is not counted and does not lengthen
it; an admin setting the operator's password (or `manage.py create-operator`) lifts it."""
from __future__ import annotations

import datetime as dt

import errors
from models import OperatorLoginFailures, utcnow
from models.prepared import Prepared

from .. import audit
from ..uow import run_in_transaction

WINDOW = dt.timedelta(minutes=15)
LOCK = dt.timedelta(minutes=15)
FORGET_AFTER = WINDOW + LOCK  # a row quiet this long holds neither a failure that counts nor a lock
USERNAME_CHARS = 64  # operators.username; a longer name tried is audited (cut) but cannot lock anything

_LOCKED_UNTIL = Prepared("SELECT `locked_until` FROM `operator_login_failures` WHERE `username` = %s",
                         ("locked_until",))
_ENSURE_ROW = Prepared("INSERT INTO `operator_login_failures` (`username`, `recent_failures`, `updated_at`) "
                       "VALUES (%s, '', %s) ON DUPLICATE KEY UPDATE `username` = `username`")
_LOCK_ROW = Prepared("SELECT `recent_failures`, `locked_until` FROM `operator_login_failures` WHERE `username` = %s "
                     "FOR UPDATE", ("recent_failures", "locked_until"))
_SAVE_ROW = Prepared("UPDATE `operator_login_failures` SET `recent_failures` = %s, `locked_until` = %s, "
                     "`updated_at` = %s WHERE `username` = %s")
_FORGET_QUIET = Prepared("DELETE FROM `operator_login_failures` WHERE `updated_at` < %s LIMIT 100")


def locked():
    """429 RATE_LIMITED for a locked username (the contract's code, a message that says why)."""
    return errors.ServiceError(429, "RATE_LIMITED", "登录失败次数过多，该账号已被锁定 15 分钟，请稍后再试")


async def refuse_if_locked(username: str):
    """429 when the username is locked now (a plain read: no hashing, no row lock)."""
    if len(username) > USERNAME_CHARS:
        return
    row = await _LOCKED_UNTIL.first(username)
    if row is not None and row.locked_until is not None and row.locked_until > utcnow():
        raise locked()


def _millis(moment: dt.datetime) -> int:
    return int(moment.replace(tzinfo=dt.timezone.utc).timestamp() * 1000)


async def _count_failure(uow, username, actor, limit):
    now = utcnow()
    await _ENSURE_ROW.execute(username, now)
    row = await _LOCK_ROW.first(username)  # one failure of this username at a time, in every process
    if row.locked_until is not None and row.locked_until > now:
        raise locked()  # locked while this attempt's password was checked: refused, not counted
    since = _millis(now - WINDOW)
    recent = [int(t) for t in row.recent_failures.split(",") if t and int(t) > since] + [_millis(now)]
    locked_until = None
    if len(recent) >= limit:
        locked_until, recent = now + LOCK, []
    await _SAVE_ROW.execute(",".join(map(str, recent)), locked_until, now, username)
    await audit.record("operator_login_failed", actor, entity="operator",
                       detail=f"username {username!r}" + (f": locked until {locked_until.isoformat()}Z"
                                                           if locked_until else ""))
    return locked_until


async def record_failure(ctx, username: str, actor):
    """Count a failed login of `username` and audit it (`operator_login_failed`, the name tried in `detail`, the
    client IP). 429 instead when the username was locked meanwhile (then neither counted nor audited)."""
    if len(username) > USERNAME_CHARS:
        await run_in_transaction(ctx, _audit_only, username, actor)
        return
    await run_in_transaction(ctx, _count_failure, username, actor, ctx.settings.operator_login_max_failures)
    await _FORGET_QUIET.execute(utcnow() - FORGET_AFTER)  # on its own, so it never holds up the count's row lock


async def _audit_only(uow, username, actor):
    await audit.record("operator_login_failed", actor, entity="operator",
                       detail=f"username {username[:USERNAME_CHARS]!r}… ({len(username)} characters)")


async def lift(username: str):
    """The operator's password was set: the lock and the failures counted so far are gone."""
    await OperatorLoginFailures.delete().where(OperatorLoginFailures.username == username).aio_execute()
