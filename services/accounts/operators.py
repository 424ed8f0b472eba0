"""Operator accounts: list, create, change role, password or active flag (admin only, through the API or the back
office), and the command line's provisioning (`manage.py create-operator`) — each audited."""
from __future__ import annotations

import errors
from models import Operator, database, utcnow

from .. import audit
from ..formats import iso
from ..paging import page, parse_limit
from ..uow import run_in_transaction
from . import lockout, passwords
from .roles import ROLES


def serialize(operator) -> dict:
    """An operator as the admin API shows one (never the password hash)."""
    return {"id": operator.id, "username": operator.username, "role": operator.role, "active": operator.active,
            "created_at": iso(operator.created_at), "last_login_at": iso(operator.last_login_at)}


def _username(value):
    if not isinstance(value, str) or not value.strip() or len(value.strip()) > 64 or any(c.isspace() for c in value):
        raise errors.invalid_request("username 必须是 1 到 64 个非空白字符", field="username")
    return value.strip()


def _password(value):
    if not isinstance(value, str) or not 8 <= len(value) <= passwords.MAX_PASSWORD_CHARS:
        raise errors.invalid_request(f"password 必须是 8 到 {passwords.MAX_PASSWORD_CHARS} 个字符", field="password")
    return value


def _role(value):
    if value not in ROLES:
        raise errors.invalid_request("role 必须是 admin、finance 或 staff", field="role")
    return value


async def _create(uow, username, password_hash, role, actor):
    if await Operator.select().where(Operator.username == username).aio_exists():
        raise errors.operator_exists()
    operator_id = await Operator.insert(username=username, password_hash=password_hash, role=role).aio_execute()
    await audit.record("operator_created", actor, entity="operator", new_status=role,
                       detail=f"operator {operator_id} {username}")
    return operator_id


async def create_operator(ctx, body: dict, actor) -> dict:
    """POST /api/v1/admin/operators: a new operator; 409 OPERATOR_EXISTS for a taken username."""
    username, role = _username(body.get("username")), _role(body.get("role"))
    password_hash = await passwords.hash_password_async(_password(body.get("password")))
    try:
        operator_id = await run_in_transaction(ctx, _create, username, password_hash, role, actor)
    except Exception as e:  # two requests for one username: the unique key decides
        if "Duplicate entry" in str(e):
            raise errors.operator_exists() from None
        raise
    return serialize(await Operator.select().where(Operator.id == operator_id).aio_get())


async def _change(uow, operator_id, changes, actor):
    operator = await Operator.select().where(Operator.id == operator_id).for_update().aio_first()
    if operator is None:
        raise errors.not_found("操作员不存在")
    if operator.id == actor.operator_id and (changes.get("active") is False or changes.get("role", "admin") != "admin"):
        raise errors.invalid_request("不能停用自己或取消自己的管理员角色")
    if changes:
        await Operator.update(**changes).where(Operator.id == operator.id).aio_execute()
    if "password_hash" in changes:
        await lockout.lift(operator.username)  # a new password lifts a login lock at once (contract §2)
    described = {k: ("***" if k == "password_hash" else v) for k, v in changes.items()}
    await audit.record("operator_changed", actor, entity="operator",
                       old_status=f"{operator.role}/{'active' if operator.active else 'inactive'}",
                       new_status=f"{changes.get('role', operator.role)}/"
                                  f"{'active' if changes.get('active', operator.active) else 'inactive'}",
                       detail=f"operator {operator.id} {operator.username}: {', '.join(sorted(described))}")


async def change_operator(ctx, operator_id: int, body: dict, actor) -> dict:
    """PATCH /api/v1/admin/operators/{id}: role, active, password; an inactive operator's tokens stop at once."""
    changes = {}
    if "role" in body:
        changes["role"] = _role(body["role"])
    if "active" in body:
        if not isinstance(body["active"], bool):
            raise errors.invalid_request("active 必须是 true 或 false", field="active")
        changes["active"] = body["active"]
    if "password" in body:
        changes["password_hash"] = await passwords.hash_password_async(_password(body["password"]))
        changes["password_changed_at"] = utcnow()
    await run_in_transaction(ctx, _change, operator_id, changes, actor)
    return serialize(await Operator.select().where(Operator.id == operator_id).aio_get())


async def list_operators(args: dict) -> dict:
    """Operators, newest first, paged."""
    rows, cursor = await page(Operator.select(), Operator.id, parse_limit(args.get("limit")), args.get("cursor"))
    return {"items": [serialize(o) for o in rows], "next_cursor": cursor}


CLI = audit.Actor("system", user_agent="manage.py create-operator")


async def provision_operator(username: str, password: str, role: str) -> tuple[Operator, bool]:
    """`manage.py create-operator`: create the operator, or (the way back in for a locked-out gym) give an existing
    one this password and role and make it active again; (operator, created). Audited either way; ValueError for
    a bad argument."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {', '.join(ROLES)}")
    if not username or len(username) > 64 or any(c.isspace() for c in username):
        raise ValueError("username must be 1..64 characters without spaces")
    if not 8 <= len(password) <= passwords.MAX_PASSWORD_CHARS:
        raise ValueError(f"password must be 8 to {passwords.MAX_PASSWORD_CHARS} characters")
    hashed = await passwords.hash_password_async(password)
    async with database.aio_atomic():
        existing = await Operator.select().where(Operator.username == username).for_update().aio_first()
        if existing is None:
            operator_id = await Operator.insert(username=username, password_hash=hashed, role=role).aio_execute()
            await audit.record("operator_created", CLI, entity="operator", new_status=f"{role}/active",
                               detail=f"operator {operator_id} {username} (command line)")
        else:
            operator_id = existing.id
            await Operator.update(password_hash=hashed, role=role, active=True, password_changed_at=utcnow()).where(
                Operator.id == operator_id).aio_execute()
            await lockout.lift(existing.username)
            await audit.record("operator_reset", CLI, entity="operator",
                               old_status=f"{existing.role}/{'active' if existing.active else 'inactive'}",
                               new_status=f"{role}/active",
                               detail=f"operator {operator_id} {username}: password, role and active set "
                                      "(command line)")
    return await Operator.select().where(Operator.id == operator_id).aio_get(), existing is None
