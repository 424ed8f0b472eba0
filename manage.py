"""Administrative commands: `migrate`, `create-operator`, `seed-demo`, `check-invariants`, `rotate-data-key`,
`verify-audit`."""
from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import os
import sys

import peewee
import pymysql

from models import CourseSchedule, close_database, open_database, personal_data, utcnow
from models.migrations import MigrationError, migrate
from settings import SettingsError, load_data_keys, parse_database_url


def _db_url():
    try:
        return parse_database_url(os.environ)
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


def _load_data_keys(required):
    """Load DATA_KEY_FILE (and DATA_KEY_PREVIOUS_FILE) for this process; `migrate` needs them only for a database
    that still holds openids in clear."""
    if not required and not os.environ.get("DATA_KEY_FILE", "").strip():
        return
    try:
        personal_data.configure(*load_data_keys(os.environ))
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        raise SystemExit(2) from None


async def _migrate():
    try:
        await migrate()
    except MigrationError as e:
        raise SystemExit(f"migrate: {e}") from None


async def _with_db(coro_fn):
    await open_database(_db_url(), pool_max=2)
    try:
        return await coro_fn()
    finally:
        await close_database()


async def _create_operator(args):
    from services.accounts.operators import provision_operator

    try:
        with open(args.password_file, encoding="utf-8") as fh:
            password = fh.read().strip()
    except OSError as e:
        raise SystemExit(f"cannot read {args.password_file}: {e.strerror}") from None
    try:
        operator, created = await provision_operator(args.username, password, args.role)
    except ValueError as e:
        raise SystemExit(f"create-operator: {e}") from None
    what = "created" if created else "already existed: its password and role were reset and it is active"
    print(f"operator {operator.username} (id {operator.id}, role {operator.role}) {what}")


async def _seed_demo():
    if await CourseSchedule.select().where(CourseSchedule.starts_at > utcnow()).aio_exists():
        print("demo schedules already present")
        return
    base = utcnow().replace(hour=2, minute=0, second=0, microsecond=0) + dt.timedelta(days=1)
    # The last one has a single seat: one parent fills it, so that the demo shows the waitlist (docs/demo.md).
    rows = [("少儿体操体验课（4-6岁）", 0, 8), ("少儿体操体验课（7-9岁）", 1, 6), ("亲子体操体验课", 2, 3),
            ("小班体验课（1个名额·可候补）", 3, 1)]
    for title, days, capacity in rows:
        await CourseSchedule.insert(title=title, starts_at=base + dt.timedelta(days=days), capacity=capacity).aio_execute()
    print(f"seeded {len(rows)} demo schedules")


async def _check_invariants(args) -> int:
    """Run the checks, print one line per violation or warning; 1 when any invariant is broken."""
    from services.invariants import check_invariants, check_wechatpay

    env = {**os.environ, **({"DATABASE_URL": args.database_url} if args.database_url else {})}
    try:
        db_url = parse_database_url(env)
        interval = args.reconcile_interval or float(env.get("RECONCILE_INTERVAL_SECONDS") or 60)
    except (SettingsError, ValueError) as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    gateway = None
    if args.wechatpay:
        import settings as settings_module
        from services.wechat.pay_gateway import WeChatPayGateway

        gateway = WeChatPayGateway(settings_module.load_or_exit(env))
    try:
        await open_database(db_url, pool_max=2)
        found = await check_invariants(interval)
        if gateway is not None:
            found += await check_wechatpay(gateway, args.days, interval, rate=args.rate,
                                           progress=lambda text: print(text, file=sys.stderr, flush=True))
    except (peewee.PeeweeException, pymysql.err.MySQLError, OSError) as e:
        print(f"check-invariants: cannot read the database: {e}", file=sys.stderr)
        return 2
    finally:
        if gateway is not None:
            await gateway.close()
        await close_database()
    for violation in found:
        print(violation.line())
    broken = sum(not v.warning for v in found)
    if broken:
        print(f"{broken} violation(s)", file=sys.stderr)
        return 1
    warnings = len(found) - broken
    print("all invariants hold" + (f" ({warnings} warning(s))" if warnings else ""))
    return 0


async def _rotate_data_key(args) -> int:
    """Re-encrypt every ciphertext under DATA_KEY_FILE's key (`--check`: only count what is left); 0 when none is
    left under another key."""
    from models.data_key_rotation import left_under_other_keys, rotate

    ring = personal_data.keyring()
    previous = ring.previous.key_id if ring.previous else "none"
    print(f"data key {ring.current.key_id} (DATA_KEY_FILE); previous key {previous} (DATA_KEY_PREVIOUS_FILE)",
          flush=True)
    if args.check:
        left = await left_under_other_keys(ring)
    else:
        result = await rotate(ring, batch=args.batch, pause=args.pause, progress=lambda t: print(t, flush=True))
        left = result.left
        print(f"{result.rewritten} value(s) re-encrypted", flush=True)
        for name, count in result.unreadable.items():
            print(f"{name}: {count} value(s) under a key no loaded key is (set DATA_KEY_PREVIOUS_FILE to it)",
                  file=sys.stderr)
        for row in result.conflicts:
            print(f"{row}: its lookup hash under the new key is another row's (one parent, two rows)",
                  file=sys.stderr)
    for name, count in left.items():
        if count:
            print(f"{name}: {count} value(s) still under another key", file=sys.stderr)
    if any(left.values()):
        return 1
    print(f"every value is under key {ring.current.key_id}: DATA_KEY_PREVIOUS_FILE can be removed")
    return 0


async def _verify_audit() -> int:
    """Print the audit trail's verdict (contract §2) as one JSON object; 0 when ok, 1 when not, 2 when it cannot run."""
    import json

    from services.audit_trail import checkpoints
    from services.audit_trail.seal import SealKeys
    from services.audit_trail.verify import verify_trail
    from settings import load_audit_trail

    try:
        db_url = parse_database_url(os.environ)
        key, checkpoint_dir = load_audit_trail(os.environ)
    except SettingsError as e:
        print(f"configuration error: {e}", file=sys.stderr)
        return 2
    try:
        await open_database(db_url, pool_max=2)
        result = await verify_trail(SealKeys(key), checkpoints.read(checkpoint_dir, db_url.name))
    except (peewee.PeeweeException, pymysql.err.MySQLError, OSError) as e:
        print(f"verify-audit: cannot read the database: {e}", file=sys.stderr)
        return 2
    finally:
        await close_database()
    print(json.dumps(result))
    return 0 if result["ok"] else 1


def main(argv=None):
    """Parse the command line and run one command."""
    parser = argparse.ArgumentParser(prog="manage.py")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create or upgrade the schema (safe to run twice)")
    op = sub.add_parser("create-operator", help="create an operator (or reset its password and role)")
    op.add_argument("--username", required=True)
    op.add_argument("--password-file", required=True)
    op.add_argument("--role", required=True, choices=["admin", "finance", "staff"])
    sub.add_parser("seed-demo", help="add a few upcoming demo schedules if there are none")
    ck = sub.add_parser("check-invariants", help="check the booking and payment invariants; non-zero when broken")
    ck.add_argument("--database-url", help="another database than DATABASE_URL")
    ck.add_argument("--reconcile-interval", type=float, help="seconds (default RECONCILE_INTERVAL_SECONDS or 60)")
    ck.add_argument("--wechatpay", action="store_true",
                    help="also ask WeChat Pay about recent orders (needs the service's settings in the environment)")
    ck.add_argument("--days", type=float, default=7, help="with --wechatpay: orders created in the last N days")
    ck.add_argument("--rate", type=float, default=10, help="with --wechatpay: WeChat Pay queries a second")
    rk = sub.add_parser("rotate-data-key", help="re-encrypt personal data under DATA_KEY_FILE's key, in batches, "
                                                "while the service runs (the old key as DATA_KEY_PREVIOUS_FILE)")
    rk.add_argument("--batch", type=int, default=500, help="rows per transaction (default 500)")
    rk.add_argument("--pause", type=float, default=0.05, help="seconds between batches (default 0.05)")
    rk.add_argument("--check", action="store_true", help="change nothing: count the values not under the key")
    sub.add_parser("verify-audit", help="verify the audit trail's seals; prints the verdict, non-zero when broken "
                                        "(DATABASE_URL, AUDIT_KEY_FILE, AUDIT_CHECKPOINT_DIR)")
    args = parser.parse_args(argv)
    if args.command == "check-invariants" and (args.rate <= 0 or args.days <= 0):
        parser.error("--rate and --days must be positive")
    if args.command == "rotate-data-key" and (args.batch < 1 or args.pause < 0):
        parser.error("--batch must be at least 1 and --pause not negative")
    if args.command == "migrate":
        _load_data_keys(required=False)
        asyncio.run(_with_db(_migrate))
    elif args.command == "create-operator":
        asyncio.run(_with_db(lambda: _create_operator(args)))
    elif args.command == "seed-demo":
        asyncio.run(_with_db(_seed_demo))
    elif args.command == "check-invariants":
        raise SystemExit(asyncio.run(_check_invariants(args)))
    elif args.command == "rotate-data-key":
        _load_data_keys(required=True)
        raise SystemExit(asyncio.run(_with_db(lambda: _rotate_data_key(args))))
    elif args.command == "verify-audit":
        raise SystemExit(asyncio.run(_verify_audit()))


if __name__ == "__main__":
    main()
