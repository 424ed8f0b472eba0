"""Administrative commands: `migrate`, `create-operator`, `seed-demo`."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys

from models import CourseSchedule, close_database, open_database, utcnow
from models.migrations import migrate
from settings import SettingsError, parse_database_url


def _db_url():
    try:
        return parse_database_url(os.environ)
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


async def _with_db(coro_fn):
    await open_database(_db_url(), pool_max=2)
    try:
        return await coro_fn()
    finally:
        await close_database()


async def _create_operator(args):
    from services.accounts.auth import create_operator

    try:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    except OSError as e:
        raise SystemExit(f"cannot read {args.password_file}: {e.strerror}") from None
    try:
        operator = await create_operator(args.username, password, args.role)
    except ValueError as e:
        raise SystemExit(f"create-operator: {e}") from None
    print(f"operator {operator.username} (id {operator.id}, role {operator.role}) is ready")


async def _seed_demo():
    if await CourseSchedule.select().where(CourseSchedule.starts_at > utcnow()).aio_exists():
        print("demo schedules already present")
        return
    base = utcnow().replace(hour=2, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    rows = [("少儿体操体验课（4-6岁）", 0, 8), ("少儿体操体验课（7-9岁）", 1, 6), ("亲子体操体验课", 2, 3)]
    for title, days, capacity in rows:
        await CourseSchedule.insert(title=title, starts_at=base + dt.timedelta(days=days), capacity=capacity).aio_execute()
    print(f"seeded {len(rows)} demo class sessions")


def main(argv=None):
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="manage.py")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema (safe to run twice)")
    op = sub.add_parser("create-operator", help="create an operator (or reset its password and role)")
    op.add_argument("--username", required=True)
    op.add_argument("--password-file", required=True)
    op.add_argument("--role", required=True, choices=["admin", "finance", "staff"])
    sub.add_parser("seed-demo", help="add a few upcoming demo class sessions if there are none")
    args = parser.parse_args(argv)
    if args.command == "migrate":
        asyncio.run(_with_db(migrate))
    elif args.command == "create-operator":
        asyncio.run(_with_db(lambda: _create_operator(args)))
    elif args.command == "seed-demo":
        asyncio.run(_with_db(_seed_demo))


if __name__ == "__main__":
    main()
